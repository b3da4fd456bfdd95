import { readFile } from 'node:fs/promises';
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
 * SMTP through nodemailer, from LATCHKEY_SMTP_URL or the file LATCHKEY_SMTP_URL_FILE names (a secret
 * mount: the URL usually carries credentials). Null when neither is set: reset mail is off.
 */
export async function createMailer(mail: Config['passwordReset']): Promise<Mailer | null> {
  const url = mail.smtpUrl ?? (mail.smtpUrlFile ? (await readFile(mail.smtpUrlFile, 'utf8')).trim() : undefined);
  if (!url) return null;
  if (!/^smtps?:\/\//.test(url)) throw new Error('LATCHKEY_SMTP_URL_FILE must hold an smtp:// or smtps:// URL');
  const transport = nodemailer.createTransport(url);
  return {
    async send(message) {
      await transport.sendMail({ from: mail.from, to: message.to, subject: message.subject, text: message.text });
    },
    close: () => transport.close(),
  };
}
