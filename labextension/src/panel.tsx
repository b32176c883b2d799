/** The "Containers" sidebar: containers and images of the engine, with their actions. */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import {
  closeIcon,
  deleteIcon,
  downloadIcon,
  LabIcon,
  listIcon,
  refreshIcon,
  runIcon,
  stopIcon,
  terminalIcon
} from '@jupyterlab/ui-components';
import { PageConfig } from '@jupyterlab/coreutils';
import React, { useState } from 'react';

import { containerName, formatPort, humanSize, imageTags, proxyUrl, shortId, timeAgo } from './format';
import { DockerModel, IContainer, IImage, IPull } from './model';

/** What the panel asks of the application: dialogs, tabs and error reports. */
export interface IPanelActions {
  openLogs(container: IContainer): void;
  openExec(container: IContainer): void;
  removeContainer(container: IContainer): Promise<void>;
  removeImage(image: IImage): Promise<void>;
  pull(reference: string): Promise<void>;
  report(title: string, err: unknown): void;
}

export class ContainersPanel extends ReactWidget {
  constructor(
    readonly model: DockerModel,
    private actions: IPanelActions
  ) {
    super();
    this.addClass('jp-PydockPanel');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <PanelView model={this.model} actions={this.actions} />}
      </UseSignal>
    );
  }
}

interface IViewProps {
  model: DockerModel;
  actions: IPanelActions;
}

function PanelView({ model, actions }: IViewProps): JSX.Element {
  return (
    <div className="jp-PydockPanel-body">
      <header className="jp-PydockPanel-header">
        <h2>Containers</h2>
        <span
          className={`jp-PydockPanel-conn ${model.connected ? 'jp-mod-live' : ''}`}
          title={model.connected ? 'Receiving engine events' : model.lastError ?? 'Connecting'}
        >
          {model.connected ? 'live' : 'connecting…'}
        </span>
        <IconButton
          icon={refreshIcon}
          label="Refresh"
          onClick={() => model.refresh()}
          report={actions.report}
        />
      </header>
      {model.lastError && <div className="jp-PydockPanel-error">{model.lastError}</div>}
      <ContainerList model={model} actions={actions} />
      <h2 className="jp-PydockPanel-section">Images</h2>
      <PullForm actions={actions} />
      {model.pulls.map((p, i) => (
        <PullRow key={`${p.reference}-${i}`} pull={p} onDismiss={() => model.dismissPull(p)} />
      ))}
      <ImageList model={model} actions={actions} />
    </div>
  );
}

function ContainerList({ model, actions }: IViewProps): JSX.Element {
  if (model.containers.length === 0) {
    return <div className="jp-PydockPanel-empty">No containers</div>;
  }
  return (
    <ul className="jp-PydockPanel-list jp-PydockContainers">
      {model.containers.map(c => (
        <ContainerRow key={c.Id} container={c} model={model} actions={actions} />
      ))}
    </ul>
  );
}

function ContainerRow({
  container: c,
  model,
  actions
}: IViewProps & { container: IContainer }): JSX.Element {
  const running = c.State === 'running' || c.State === 'restarting' || c.State === 'paused';
  const name = containerName(c);
  const baseUrl = PageConfig.getBaseUrl();
  const ports = (c.Ports ?? []).map((p, i) => {
    const href = proxyUrl(baseUrl, name, p);
    const text = formatPort(p);
    return (
      <React.Fragment key={i}>
        {i > 0 && ', '}
        {href ? (
          <a href={href} target="_blank" rel="noopener noreferrer" title="Open through Jupyter">
            {text}
          </a>
        ) : (
          text
        )}
      </React.Fragment>
    );
  });
  return (
    <li className="jp-PydockPanel-item jp-PydockContainer" data-name={name} data-state={c.State}>
      <span className={`jp-PydockState jp-PydockState-${c.State}`} title={c.State} />
      <div className="jp-PydockPanel-main">
        <div className="jp-PydockPanel-title" title={c.Id}>
          {name}
        </div>
        <div className="jp-PydockPanel-detail">
          <span className="jp-PydockContainer-image">{c.Image}</span>
          <span className="jp-PydockContainer-status">{c.Status}</span>
          {ports.length > 0 && <span className="jp-PydockContainer-ports">{ports}</span>}
        </div>
      </div>
      <div className="jp-PydockPanel-actions">
        {running ? (
          <IconButton
            icon={stopIcon}
            label="Stop"
            onClick={() => model.stopContainer(c.Id)}
            report={actions.report}
          />
        ) : (
          <IconButton
            icon={runIcon}
            label="Start"
            onClick={() => model.startContainer(c.Id)}
            report={actions.report}
          />
        )}
        <IconButton
          icon={refreshIcon}
          label="Restart"
          onClick={() => model.restartContainer(c.Id)}
          report={actions.report}
        />
        <IconButton
          icon={listIcon}
          label="Logs"
          onClick={async () => actions.openLogs(c)}
          report={actions.report}
        />
        {c.State === 'running' && (
          <IconButton
            icon={terminalIcon}
            label="Exec"
            onClick={async () => actions.openExec(c)}
            report={actions.report}
          />
        )}
        <IconButton
          icon={deleteIcon}
          label="Remove"
          onClick={() => actions.removeContainer(c)}
          report={actions.report}
        />
      </div>
    </li>
  );
}

function ImageList({ model, actions }: IViewProps): JSX.Element {
  if (model.images.length === 0) {
    return <div className="jp-PydockPanel-empty">No images</div>;
  }
  return (
    <ul className="jp-PydockPanel-list jp-PydockImages">
      {model.images.map(img => (
        <li key={img.Id} className="jp-PydockPanel-item jp-PydockImage" data-id={img.Id}>
          <div className="jp-PydockPanel-main">
            <div className="jp-PydockPanel-title" title={img.Id}>
              {imageTags(img).join(', ')}
            </div>
            <div className="jp-PydockPanel-detail">
              <span>{shortId(img.Id)}</span>
              <span>{humanSize(img.Size)}</span>
              <span>{timeAgo(img.Created)}</span>
            </div>
          </div>
          <div className="jp-PydockPanel-actions">
            <IconButton
              icon={deleteIcon}
              label="Remove image"
              onClick={() => actions.removeImage(img)}
              report={actions.report}
            />
          </div>
        </li>
      ))}
    </ul>
  );
}

function PullForm({ actions }: { actions: IPanelActions }): JSX.Element {
  const [reference, setReference] = useState('');
  const submit = (e: React.FormEvent): void => {
    e.preventDefault();
    const ref = reference.trim();
    if (ref) {
      setReference('');
      void actions.pull(ref);
    }
  };
  return (
    <form className="jp-PydockPull-form" onSubmit={submit}>
      <input
        className="jp-mod-styled jp-PydockPull-input"
        placeholder="image[:tag] to pull"
        aria-label="Image to pull"
        value={reference}
        onChange={e => setReference(e.target.value)}
      />
      <button type="submit" className="jp-PydockButton" title="Pull" aria-label="Pull">
        <downloadIcon.react tag="span" className="jp-PydockButton-icon" />
      </button>
    </form>
  );
}

function PullRow({ pull, onDismiss }: { pull: IPull; onDismiss: () => void }): JSX.Element {
  const { progress } = pull;
  const pct = Math.round(progress.fraction * 100);
  return (
    <div className={`jp-PydockPull ${progress.error ? 'jp-mod-error' : ''}`}>
      <div className="jp-PydockPull-head">
        <span className="jp-PydockPull-ref">{pull.reference}</span>
        {progress.error && (
          <button className="jp-PydockButton" title="Dismiss" aria-label="Dismiss" onClick={onDismiss}>
            <closeIcon.react tag="span" className="jp-PydockButton-icon" />
          </button>
        )}
      </div>
      <div
        className="jp-PydockPull-bar"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
      >
        <div className="jp-PydockPull-fill" style={{ width: `${pct}%` }} />
      </div>
      <div className="jp-PydockPull-status">{progress.error ?? progress.status}</div>
    </div>
  );
}

interface IIconButtonProps {
  icon: LabIcon;
  label: string;
  onClick: () => Promise<unknown>;
  report: IPanelActions['report'];
}

/** A button that disables itself while its action runs and reports failures. */
function IconButton({ icon, label, onClick, report }: IIconButtonProps): JSX.Element {
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
      disabled={busy}
      onClick={() => void click()}
    >
      <icon.react tag="span" className="jp-PydockButton-icon" />
    </button>
  );
}
