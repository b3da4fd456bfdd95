import type { RotateResult, Store } from '../../src/store/store.js';

/**
 * Wraps a store so that, once armed with `n`, its next rotations wait until `n` have arrived (or 3 s
 * pass). Refreshes from two browser tabs are then certainly in flight together: each was sent before any
 * answer came back, hence with the same cookie. Records how every rotation ended and how many armed rounds
 * really overlapped.
 */
export function gateRotations(store: Store) {
  let expected = 0;
  let waiting: Array<() => void> = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcomes: Array<RotateResult['status']> = [];
  let overlaps = 0;
  const release = () => {
    clearTimeout(timer);
    expected = 0;
    const all = waiting;
    waiting = [];
    for (const go of all) go();
  };
  const gated = new Proxy(store, {
    get(target, prop) {
      if (prop === 'rotate') {
        return async (request: Parameters<Store['rotate']>[0]) => {
          if (expected > 0) {
            await new Promise<void>((resolve) => {
              waiting.push(resolve);
              if (waiting.length >= expected) {
                overlaps += 1;
                release();
              }
            });
          }
          const result = await target.rotate(request);
          outcomes.push(result.status);
          return result;
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    store: gated,
    outcomes,
    get overlaps() {
      return overlaps;
    },
    arm(n: number) {
      expected = n;
      timer = setTimeout(release, 3000);
    },
  };
}
