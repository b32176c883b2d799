import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';

import { jupyterRequester } from './api';
import { confirm, mainAreaActions } from './appactions';
import { containerName, imageTags } from './format';
import { Widget } from '@lumino/widgets';

import { containerIcon } from './icons';
import { createLogTab } from './logview';
import { DockerModel, errorMessage, IContainer, IImage } from './model';
import { ContainersPanel, IPanelActions } from './panel';
import { createTerminalTab } from './terminal';

namespace CommandIDs {
  export const openPanel = 'pydock:open-panel';
  export const refresh = 'pydock:refresh';
  export const pullImage = 'pydock:pull-image';
  export const openLogs = 'pydock:open-logs';
  export const openExec = 'pydock:open-exec';
}

const PANEL_ID = 'pydock-containers';
const CATEGORY = 'Containers';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'pydock-labextension:plugin',
  description: 'Containers and images of the pydock engine in a JupyterLab sidebar.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const requester = jupyterRequester(app.serviceManager.serverSettings);
    const model = new DockerModel(requester);
    const tabs = new WidgetTracker<MainAreaWidget<Widget>>({ namespace: 'pydock-tabs' });
    const kinds = {
      logs: (id: string, name: string): MainAreaWidget<Widget> => createLogTab(requester, id, name),
      exec: (id: string, name: string, cmd?: string): MainAreaWidget<Widget> =>
        createTerminalTab({ container: id, cmd, settings: app.serviceManager.serverSettings }, `Terminal: ${name}`)
    };

    /** One tab per container and kind: opening it again brings the existing one forward. */
    const openTab = (kind: keyof typeof kinds, id: string, name: string, cmd?: string): void => {
      const widgetId = `pydock-${kind}-${id}`;
      const existing = tabs.find(w => w.id === widgetId);
      if (existing) {
        shell.activateById(existing.id);
        return;
      }
      const widget = kinds[kind](id, name, cmd);
      widget.id = widgetId;
      void tabs.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    };

    const report = (title: string, err: unknown): void => {
      void showErrorMessage(title, errorMessage(err));
    };

    // A failed pull stays in the panel with the engine's message until dismissed.
    const pull = async (reference: string): Promise<void> => {
      await model.pullImage(reference);
    };

    const actions: IPanelActions = {
      ...mainAreaActions(shell, model),
      openLogs: (c: IContainer) => openTab('logs', c.Id, containerName(c)),
      openExec: (c: IContainer) => openTab('exec', c.Id, containerName(c)),
      removeContainer: async (c: IContainer) => {
        const name = containerName(c);
        if (await confirm('Remove container', `Remove container "${name}"? A running container is killed first.`, 'Remove')) {
          await model.removeContainer(c.Id);
        }
      },
      removeImage: async (img: IImage) => {
        const tags = imageTags(img);
        // Removing by tag untags only that name, as `docker rmi` does; an untagged image goes by ID.
        const name = tags[0] === '<none>' ? img.Id : tags[0];
        if (await confirm('Remove image', `Remove image "${name}"?`, 'Remove')) {
          await model.removeImage(name);
        }
      },
      pull,
      report
    };

    const panel = new ContainersPanel(model, actions);
    panel.id = PANEL_ID;
    panel.title.icon = containerIcon;
    panel.title.caption = 'Containers';
    shell.add(panel, 'left', { rank: 400 });
    restorer?.add(panel, PANEL_ID);
    void model.start();

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Containers Panel',
      caption: 'Open the pydock containers and images sidebar',
      execute: () => shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Containers and Images',
      execute: () => model.refresh()
    });
    app.commands.addCommand(CommandIDs.pullImage, {
      label: 'Pull Image…',
      execute: async args => {
        let reference = (args.reference as string | undefined) ?? '';
        if (!reference) {
          const result = await InputDialog.getText({
            title: 'Pull image',
            placeholder: 'name[:tag], e.g. alpine:3.20'
          });
          reference = (result.button.accept && result.value?.trim()) || '';
        }
        if (reference) {
          shell.activateById(PANEL_ID);
          await pull(reference);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openLogs, {
      label: args => (args.name ? `Show Logs of ${args.name}` : 'Show Container Logs'),
      execute: args => openTab('logs', args.id as string, (args.name as string) ?? (args.id as string))
    });
    app.commands.addCommand(CommandIDs.openExec, {
      label: args => (args.name ? `Open a Terminal in ${args.name}` : 'Open a Terminal in a Container'),
      execute: args =>
        openTab('exec', args.id as string, (args.name as string) ?? (args.id as string), args.cmd as string | undefined)
    });

    for (const command of [CommandIDs.openPanel, CommandIDs.refresh, CommandIDs.pullImage]) {
      palette?.addItem({ command, category: CATEGORY });
    }
  }
};

export default plugin;
