/** The panel's action buttons: icons in a wide sidebar, a menu in a narrow one. */
import { caretDownIcon, ellipsesIcon, LabIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

/** Shows a failed action's error (the engine's message) to the user. */
export type Report = (title: string, err: unknown) => void;

export interface IAction {
  icon: LabIcon;
  label: string;
  onClick: () => Promise<unknown>;
  /** Text shown in place of the row's status while the action runs ("stopping…"). */
  busyText?: string;
}

interface IIconButtonProps {
  icon: LabIcon;
  label: string;
  onClick: () => Promise<unknown>;
  report: Report;
  disabled?: boolean;
}

/** A button that disables itself while its action runs and reports failures. */
export function IconButton({ icon, label, onClick, report, disabled }: IIconButtonProps): JSX.Element {
  const [busy, setBusy] = useState(false);
  const click = async (): Promise<void> => {
    setBusy(true);
    try {
      await onClick();
    } catch (err) {
      report(`${label} failed`, err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button
      className="jp-PydockButton"
      title={label}
      aria-label={label}
      disabled={busy || disabled}
      onClick={() => void click()}
    >
      <icon.react tag="span" className="jp-PydockButton-icon" />
    </button>
  );
}

interface IActionsProps {
  actions: IAction[];
  report: Report;
  /** Set while one of the row's actions runs: every button is disabled until it ends. */
  busy: boolean;
  /** Runs an action on behalf of the row, which shows its `busyText` meanwhile. */
  run: (action: IAction) => Promise<void>;
}

/**
 * A row's actions twice: as icon buttons, and as a menu behind one button.
 * The stylesheet shows one or the other by the panel's width (a container
 * query), so a narrow sidebar keeps the names readable.
 */
export function RowActions({ actions, report, busy, run }: IActionsProps): JSX.Element {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) {
      return;
    }
    // A click elsewhere or Escape closes the menu, as JupyterLab's own menus do.
    const close = (e: MouseEvent): void => {
      if (!ref.current?.contains(e.target as Node)) {
        setOpen(false);
      }
    };
    const escape = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') {
        setOpen(false);
      }
    };
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', escape);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', escape);
    };
  }, [open]);
  return (
    <div className="jp-PydockRowActions" ref={ref}>
      <div className="jp-PydockPanel-actions">
        {actions.map(a => (
          <IconButton key={a.label} icon={a.icon} label={a.label} onClick={() => run(a)} report={report} disabled={busy} />
        ))}
      </div>
      <button
        className="jp-PydockButton jp-PydockMenuButton"
        title="Actions"
        aria-label="Actions"
        aria-haspopup="menu"
        aria-expanded={open}
        disabled={busy}
        onClick={() => setOpen(!open)}
      >
        <ellipsesIcon.react tag="span" className="jp-PydockButton-icon" />
        <caretDownIcon.react tag="span" className="jp-PydockButton-icon" />
      </button>
      {open && (
        <ul className="jp-PydockMenu" role="menu">
          {actions.map(a => (
            <li key={a.label} role="menuitem">
              <button
                className="jp-PydockMenu-item"
                onClick={() => {
                  setOpen(false);
                  void run(a).catch(err => report(`${a.label} failed`, err));
                }}
              >
                <a.icon.react tag="span" className="jp-PydockButton-icon" />
                {a.label}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A row's busy state: which action runs, so the row can say so and disable its buttons. */
export function useBusy(): [string | null, (action: IAction) => Promise<void>] {
  const [busy, setBusy] = useState<string | null>(null);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    []
  );
  const run = async (action: IAction): Promise<void> => {
    if (!action.busyText) {
      await action.onClick(); // opens a view or a dialog: nothing to wait for in the row
      return;
    }
    setBusy(action.busyText);
    try {
      await action.onClick();
    } finally {
      if (mounted.current) {
        setBusy(null);
      }
    }
  };
  return [busy, run];
}
