/**
 * The "Containers" sidebar: containers, images, volumes and networks of the
 * engine, or, while the engine cannot be reached, a message with a retry.
 */
import { ReactWidget, refreshIcon, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React from 'react';

import { IconButton } from './buttons';
import { ContainerSection, IContainerActions } from './containerview';
import { IImageActions, ImageSection } from './imageview';
import { DockerModel, IEngineEvent } from './model';
import { INetwork, IVolume, NETWORKS, SectionModel, VOLUMES } from './resources';
import { ISectionActions, NetworkSection, VolumeSection } from './sectionview';
import { changesState, ContainerClock } from './status';
import { StatsPoller } from './stats';

/** What the panel asks of the application: dialogs, tabs and error reports. */
export type IPanelActions = IContainerActions & IImageActions & ISectionActions;

export class ContainersPanel extends ReactWidget {
  readonly clock: ContainerClock;
  readonly stats: StatsPoller;
  readonly volumes: SectionModel<IVolume>;
  readonly networks: SectionModel<INetwork>;

  constructor(
    readonly model: DockerModel,
    private actions: IPanelActions
  ) {
    super();
    this.addClass('jp-PydockPanel');
    this.clock = new ContainerClock(model.requester);
    this.stats = new StatsPoller(model.requester);
    this.volumes = new SectionModel(model, VOLUMES);
    this.networks = new SectionModel(model, NETWORKS);
    model.event.connect(this.onEvent, this);
  }

  /** A closed sidebar shows no figures: poll none until it opens again. */
  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.stats.suspend();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.stats.resume();
  }

  dispose(): void {
    this.stats.dispose();
    this.volumes.dispose();
    this.networks.dispose();
    super.dispose();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <UseSignal signal={this.clock.changed}>
            {() => (
              <UseSignal signal={this.stats.changed}>
                {() => <PanelView panel={this} actions={this.actions} />}
              </UseSignal>
            )}
          </UseSignal>
        )}
      </UseSignal>
    );
  }

  /**
   * A container's state may have changed: the timestamps its status text is computed from with it.
   * Exec events (health-check probes among them, once per interval) and the like leave the state alone.
   */
  private onEvent(_: DockerModel, event: IEngineEvent): void {
    if (event.Type === 'container' && event.Actor?.ID && changesState(event.Action)) {
      this.clock.forget(event.Actor.ID);
    }
  }
}

function PanelView({ panel, actions }: { panel: ContainersPanel; actions: IPanelActions }): JSX.Element {
  const { model } = panel;
  const unreachable = model.unreachable;
  return (
    <div className="jp-PydockPanel-body">
      <header className="jp-PydockPanel-header">
        <h2>Containers</h2>
        <span
          className={`jp-PydockPanel-conn ${model.connected ? 'jp-mod-live' : ''}`}
          title={model.connected ? 'Receiving engine events' : unreachable ?? 'Connecting'}
        >
          {model.connected ? 'live' : unreachable ? 'offline' : 'connecting…'}
        </span>
        <IconButton
          icon={refreshIcon}
          label="Refresh"
          onClick={() => Promise.all([model.refresh(), panel.volumes.refresh(), panel.networks.refresh()])}
          report={actions.report}
        />
      </header>
      {unreachable !== null ? (
        <div className="jp-PydockUnreachable" role="alert">
          <p className="jp-PydockUnreachable-title">Engine not reachable</p>
          <p className="jp-PydockUnreachable-reason">{unreachable}</p>
          <button className="jp-mod-styled jp-mod-accept" onClick={() => model.retry()}>
            Retry
          </button>
        </div>
      ) : (
        <>
          {model.lastError && <div className="jp-PydockPanel-error">{model.lastError}</div>}
          <ContainerSection model={model} clock={panel.clock} stats={panel.stats} actions={actions} />
          <Section title="Images">
            <ImageSection model={model} actions={actions} />
          </Section>
          <Section title="Volumes">
            <VolumeSection section={panel.volumes} actions={actions} />
          </Section>
          <Section title="Networks">
            <NetworkSection section={panel.networks} actions={actions} />
          </Section>
        </>
      )}
    </div>
  );
}

function Section({ title, children }: { title: string; children: React.ReactNode }): JSX.Element {
  return (
    <details className="jp-PydockPanel-sectionBox" open>
      <summary>
        <h2 className="jp-PydockPanel-section">{title}</h2>
      </summary>
      {children}
    </details>
  );
}
