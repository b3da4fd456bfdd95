/** A small SVG line chart of refresh throughput (and the signing ceiling) against concurrency. */
interface Point {
  concurrency: number;
  rps: { median: number; min: number; max: number };
  ceiling: { median: number };
}

export function refreshChart(points: Point[]): string {
  const W = 640;
  const H = 360;
  const pad = { l: 70, r: 20, t: 30, b: 50 };
  const maxY = Math.max(...points.flatMap((p) => [p.rps.max, p.ceiling.median])) * 1.1;
  const xs = points.map((p) => p.concurrency);
  const x = (c: number) => pad.l + (xs.indexOf(c) / Math.max(1, xs.length - 1)) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / maxY) * (H - pad.t - pad.b);
  const path = (vals: number[]) => vals.map((v, i) => `${i === 0 ? 'M' : 'L'}${x(xs[i]!).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const ticks = Array.from({ length: 5 }, (_, i) => (maxY / 4) * i);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">latchkey refresh throughput vs concurrency</text>
${ticks.map((t) => `<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(0)}</text>`).join('\n')}
${xs.map((c) => `<text x="${x(c)}" y="${H - pad.b + 18}" text-anchor="middle">${c}</text>`).join('\n')}
<text x="${W / 2}" y="${H - 12}" text-anchor="middle">concurrent clients</text>
<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">requests / s</text>
<path d="${path(points.map((p) => p.ceiling.median))}" fill="none" stroke="#999" stroke-dasharray="6 4" stroke-width="2"/>
<path d="${path(points.map((p) => p.rps.median))}" fill="none" stroke="#1f6feb" stroke-width="2.5"/>
${points.map((p) => `<line x1="${x(p.concurrency)}" x2="${x(p.concurrency)}" y1="${y(p.rps.min)}" y2="${y(p.rps.max)}" stroke="#1f6feb"/><circle cx="${x(p.concurrency)}" cy="${y(p.rps.median)}" r="3.5" fill="#1f6feb"/>`).join('\n')}
<rect x="${W - 250}" y="${pad.t + 4}" width="228" height="44" fill="white" stroke="#ccc"/>
<line x1="${W - 240}" x2="${W - 210}" y1="${pad.t + 18}" y2="${pad.t + 18}" stroke="#1f6feb" stroke-width="2.5"/><text x="${W - 204}" y="${pad.t + 22}">latchkey /refresh (median, min–max)</text>
<line x1="${W - 240}" x2="${W - 210}" y1="${pad.t + 36}" y2="${pad.t + 36}" stroke="#999" stroke-dasharray="6 4" stroke-width="2"/><text x="${W - 204}" y="${pad.t + 40}">RS256 signing ceiling (node:crypto)</text>
</svg>
`;
}
