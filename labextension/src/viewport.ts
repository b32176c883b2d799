/**
 * Virtual scrolling over fixed-height rows: which rows to draw, and where.
 *
 * Only the rows in view exist in the page. A spacer gives the scroller the
 * height of all rows, up to `MAX_SCROLL_HEIGHT` (browsers cap an element's
 * height at a few million pixels); past that the scroll position maps onto
 * the rows proportionally instead of one pixel for one pixel.
 */
export const MAX_SCROLL_HEIGHT = 4_000_000;

export interface IWindow {
  /** Height of the spacer that makes the scroller scroll. */
  spacer: number;
  /** First row to draw, and how many. */
  first: number;
  count: number;
  /** Where (from the spacer's top) the first drawn row goes. */
  offset: number;
}

export function windowFor(
  scrollTop: number,
  viewHeight: number,
  rowHeight: number,
  total: number,
  maxHeight = MAX_SCROLL_HEIGHT
): IWindow {
  const full = total * rowHeight;
  const spacer = Math.min(full, maxHeight);
  const visible = visibleRows(viewHeight, rowHeight);
  if (full <= maxHeight) {
    const first = Math.max(0, Math.min(Math.floor(scrollTop / rowHeight), total - 1));
    return { spacer, first, count: Math.max(0, Math.min(visible, total - first)), offset: first * rowHeight };
  }
  const fraction = Math.min(1, Math.max(0, scrollTop / Math.max(1, spacer - viewHeight)));
  const first = Math.round(fraction * Math.max(0, total - visible + 1));
  return windowAt(first, scrollTop, viewHeight, rowHeight, total, maxHeight);
}

/**
 * The window with row `first` at the top, for a view scrolled to `scrollTop`
 * in the proportional mapping: a wheel turn moves by rows there, finer than
 * one pixel of the scrollbar can.
 */
export function windowAt(
  first: number,
  scrollTop: number,
  viewHeight: number,
  rowHeight: number,
  total: number,
  maxHeight = MAX_SCROLL_HEIGHT
): IWindow {
  const spacer = Math.min(total * rowHeight, maxHeight);
  const visible = visibleRows(viewHeight, rowHeight);
  const top = Math.max(0, Math.min(first, total - visible + 1));
  return { spacer, first: top, count: Math.min(visible, total - top), offset: Math.min(scrollTop, Math.max(0, spacer - viewHeight)) };
}

/** Rows a view of `viewHeight` can show at once, one more for the partly shown row at each scroll step. */
function visibleRows(viewHeight: number, rowHeight: number): number {
  return Math.ceil(viewHeight / rowHeight) + 1;
}

/** Whether the view maps scroll pixels onto rows proportionally (too many rows for one pixel each). */
export function isProportional(rowHeight: number, total: number, maxHeight = MAX_SCROLL_HEIGHT): boolean {
  return total * rowHeight > maxHeight;
}

/** The scroll position that shows row `index` about a third down the view. */
export function scrollTopFor(
  index: number,
  viewHeight: number,
  rowHeight: number,
  total: number,
  maxHeight = MAX_SCROLL_HEIGHT
): number {
  const full = total * rowHeight;
  const target = Math.max(0, index - Math.floor(viewHeight / rowHeight / 3));
  if (full <= maxHeight) {
    return target * rowHeight;
  }
  const visible = visibleRows(viewHeight, rowHeight);
  const range = Math.max(1, Math.min(full, maxHeight) - viewHeight);
  return Math.round((Math.min(target, total - visible + 1) / Math.max(1, total - visible + 1)) * range);
}
