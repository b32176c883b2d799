import { describe, expect, it } from 'vitest';

import { MAX_SCROLL_HEIGHT, scrollTopFor, windowFor } from '../src/viewport';

describe('windowFor', () => {
  it('draws only the rows in view, one pixel of scroll for one pixel of rows', () => {
    expect(windowFor(0, 100, 20, 1000)).toEqual({ spacer: 20_000, first: 0, count: 6, offset: 0 });
    expect(windowFor(1010, 100, 20, 1000)).toEqual({ spacer: 20_000, first: 50, count: 6, offset: 1000 });
    expect(windowFor(19_900, 100, 20, 1000)).toEqual({ spacer: 20_000, first: 995, count: 5, offset: 19_900 });
    expect(windowFor(0, 100, 20, 3)).toEqual({ spacer: 60, first: 0, count: 3, offset: 0 });
    expect(windowFor(0, 100, 20, 0)).toEqual({ spacer: 0, first: 0, count: 0, offset: 0 });
  });

  it('maps the scroll range onto all rows past the height a browser allows', () => {
    const total = 10_000_000;
    const top = windowFor(0, 500, 18, total);
    expect(top.spacer).toBe(MAX_SCROLL_HEIGHT);
    expect(top.first).toBe(0);
    const bottom = windowFor(MAX_SCROLL_HEIGHT - 500, 500, 18, total);
    expect(bottom.first + bottom.count).toBe(total);
    expect(bottom.offset).toBe(MAX_SCROLL_HEIGHT - 500);
    const middle = windowFor((MAX_SCROLL_HEIGHT - 500) / 2, 500, 18, total);
    expect(Math.abs(middle.first - total / 2)).toBeLessThan(100);
  });
});

describe('scrollTopFor', () => {
  it('brings a row into view, in both scroll mappings', () => {
    for (const total of [1000, 10_000_000]) {
      for (const index of [0, 7, Math.floor(total / 3), total - 1]) {
        const w = windowFor(scrollTopFor(index, 500, 18, total), 500, 18, total);
        expect(index).toBeGreaterThanOrEqual(w.first);
        expect(index).toBeLessThan(w.first + w.count);
      }
    }
  });
});
