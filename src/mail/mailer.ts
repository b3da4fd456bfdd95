import nodemailer from 'nodemailer';
import type { Config } from '../config.js';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): void;
}

/**
 * SMTP through nodemailer, from LATCHKEY_SMTP_URL (or the file LATCHKEY_SMTP_URL_FILE names, a secret mount:
 * the URL usually carries credentials; config.ts reads it). Null when it is not set: reset mail is off.
 */
export async function createMailer(mail: Config['passwordReset']): Promise<Mailer | null> {
  const url = mail.smtpUrl;
  if (!url) return null;
  const transport = nodemailer.createTransport(url);
  return {
    async send(message) {
      await transport.sendMail({ from: mail.from, to: message.to, subject: message.subject, text: message.text });
    },
    close: () => transport.close(),
  };
}
