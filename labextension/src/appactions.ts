/**
 * The panel's actions that open something in JupyterLab itself: inspect and
 * history tabs in the main area, the run dialog, and removal confirmations.
 */
import { ILabShell } from '@jupyterlab/application';
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { HistoryView, InspectView } from './docviews';
import { imageTags } from './format';
import { containerIcon } from './icons';
import { DockerModel } from './model';
import { InspectKind } from './resources';
import { showRunDialog } from './rundialog';

export interface IMainAreaActions {
  inspect(kind: InspectKind, id: string, name: string): void;
  history(image: string, title: string): void;
  run(image: string): Promise<void>;
  confirmRemove(what: string, name: string): Promise<boolean>;
}

export async function confirm(title: string, body: string, label: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
  });
  return result.button.accept;
}

export function mainAreaActions(shell: ILabShell, model: DockerModel): IMainAreaActions {
  /** One tab per object and view: opening it again brings the existing one forward. */
  const open = (widgetId: string, label: string, make: () => Widget): void => {
    const existing = [...shell.widgets('main')].find(w => w.id === widgetId);
    if (existing) {
      shell.activateById(widgetId);
      return;
    }
    const widget = new MainAreaWidget({ content: make() });
    widget.id = widgetId;
    widget.title.label = label;
    widget.title.icon = containerIcon;
    widget.title.closable = true;
    shell.add(widget, 'main');
    shell.activateById(widget.id);
  };
  return {
    inspect: (kind, id, name) =>
      open(`pydock-inspect-${kind}-${id}`, `Inspect: ${name}`, () => new InspectView(model.requester, kind, id)),
    history: (image, title) =>
      open(`pydock-history-${image}`, `History: ${title}`, () => new HistoryView(model.requester, image)),
    run: async image => {
      const images = model.images.flatMap(imageTags).filter(t => t !== '<none>');
      await showRunDialog(model.requester, image, images);
    },
    confirmRemove: (what, name) => confirm(`Remove ${what}`, `Remove ${what} "${name}"?`, 'Remove')
  };
}
