/** A clock tests move by hand. Starts at the real time so Redis TTLs computed from it are sane. */
export class TestClock {
  private t: number;

  constructor(start = Date.now()) {
    this.t = start;
  }

  readonly now = (): number => this.t;

  advance(ms: number): void {
    this.t += ms;
  }

  advanceSeconds(s: number): void {
    this.t += s * 1000;
  }
}
