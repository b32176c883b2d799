/** The container section: search, state filter, compose groups, and one row per container. */
import {
  deleteIcon,
  inspectorIcon,
  listIcon,
  refreshIcon,
  runIcon,
  searchIcon,
  stopIcon,
  terminalIcon
} from '@jupyterlab/ui-components';
import { PageConfig } from '@jupyterlab/coreutils';
import React, { useEffect, useState } from 'react';

import { IAction, Report, RowActions, useBusy } from './buttons';
import {
  displayState,
  filterContainers,
  groupByProject,
  isRunning,
  STATE_COLORS,
  StateFilter
} from './containers';
import { containerName, formatPort, humanSize, proxyUrl, shortId } from './format';
import { DockerModel, IContainer } from './model';
import { ContainerClock } from './status';
import { StatsPoller } from './stats';

/** What the container section asks of the application. */
export interface IContainerActions {
  openLogs(container: IContainer): void;
  openExec(container: IContainer): void;
  removeContainer(container: IContainer): Promise<void>;
  inspect(kind: 'containers', id: string, name: string): void;
  /** Opens the run dialog, for `image` or (from the empty state) for an image still to choose. */
  run(image: string): Promise<void>;
  report: Report;
}

interface ISectionProps {
  model: DockerModel;
  clock: ContainerClock;
  stats: StatsPoller;
  actions: IContainerActions;
}

/** How often the status text ("Up 3 minutes") is recomputed. */
const TICK_MS = 1000;

const FILTERS: StateFilter[] = ['all', 'running', 'stopped'];

export function ContainerSection({ model, clock, stats, actions }: ISectionProps): JSX.Element {
  const [query, setQuery] = useState('');
  const [filter, setFilter] = useState<StateFilter>('all');
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), TICK_MS);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => clock.sync(model.containers), [model.containers]);

  const shown = filterContainers(model.containers, query, filter);
  const groups = groupByProject(shown);
  const visibleRunning = groups
    .filter(g => g.project === null || !collapsed.has(g.project))
    .flatMap(g => g.containers)
    .filter(c => c.State === 'running')
    .map(c => c.Id);
  const watchKey = visibleRunning.join(',');
  useEffect(() => stats.watch(visibleRunning), [watchKey]);
  useEffect(() => () => stats.watch([]), []); // hidden (engine unreachable): poll nothing

  if (model.containers.length === 0) {
    return (
      <div className="jp-PydockPanel-empty jp-PydockEmpty">
        <p>No containers — run one from an image.</p>
        <button className="jp-mod-styled jp-mod-accept jp-PydockEmpty-cta" onClick={() => void actions.run('')}>
          Run a container…
        </button>
      </div>
    );
  }
  const toggle = (project: string): void => {
    const next = new Set(collapsed);
    if (!next.delete(project)) {
      next.add(project);
    }
    setCollapsed(next);
  };
  return (
    <>
      <div className="jp-PydockFilter">
        <label className="jp-PydockFilter-search">
          <searchIcon.react tag="span" className="jp-PydockButton-icon" />
          <input
            className="jp-mod-styled"
            type="search"
            placeholder="Search containers"
            aria-label="Search containers"
            value={query}
            onChange={e => setQuery(e.target.value)}
          />
        </label>
        <div className="jp-PydockFilter-states" role="radiogroup" aria-label="Show">
          {FILTERS.map(f => (
            <button
              key={f}
              role="radio"
              aria-checked={filter === f}
              className={`jp-PydockFilter-state ${filter === f ? 'jp-mod-active' : ''}`}
              onClick={() => setFilter(f)}
            >
              {f}
            </button>
          ))}
        </div>
      </div>
      {shown.length === 0 && (
        <div className="jp-PydockPanel-empty">No {filter === 'all' ? '' : `${filter} `}containers match</div>
      )}
      {groups.map(g => (
        <div key={g.project ?? ''} className="jp-PydockGroup" data-project={g.project ?? ''}>
          {g.project !== null && (
            <button
              className="jp-PydockGroup-head"
              aria-expanded={!collapsed.has(g.project)}
              onClick={() => toggle(g.project!)}
              title={`Compose project ${g.project}`}
            >
              <span className="jp-PydockGroup-caret">{collapsed.has(g.project) ? '▸' : '▾'}</span>
              <span className="jp-PydockGroup-name">{g.project}</span>
              <span className="jp-PydockGroup-count">
                {g.containers.filter(isRunning).length}/{g.containers.length}
              </span>
            </button>
          )}
          {(g.project === null || !collapsed.has(g.project)) && (
            <ul className="jp-PydockPanel-list jp-PydockContainers">
              {g.containers.map(c => (
                <ContainerRow key={c.Id} container={c} status={clock.status(c, now)} {...{ model, stats, actions }} />
              ))}
            </ul>
          )}
        </div>
      ))}
    </>
  );
}

interface IRowProps {
  container: IContainer;
  status: string;
  model: DockerModel;
  stats: StatsPoller;
  actions: IContainerActions;
}

function ContainerRow({ container: c, status, model, stats, actions }: IRowProps): JSX.Element {
  const [busy, run] = useBusy();
  const name = containerName(c);
  const state = displayState(c);
  const usage = c.State === 'running' ? stats.usage(c.Id) : undefined;
  const rowActions: IAction[] = [
    isRunning(c)
      ? { icon: stopIcon, label: 'Stop', busyText: 'stopping…', onClick: () => model.stopContainer(c.Id) }
      : { icon: runIcon, label: 'Start', busyText: 'starting…', onClick: () => model.startContainer(c.Id) },
    { icon: refreshIcon, label: 'Restart', busyText: 'restarting…', onClick: () => model.restartContainer(c.Id) },
    { icon: listIcon, label: 'Logs', onClick: async () => actions.openLogs(c) },
    ...(c.State === 'running' ? [{ icon: terminalIcon, label: 'Exec', onClick: async () => actions.openExec(c) }] : []),
    { icon: inspectorIcon, label: 'Inspect', onClick: async () => actions.inspect('containers', c.Id, name) },
    { icon: deleteIcon, label: 'Remove', onClick: () => actions.removeContainer(c) }
  ];
  return (
    <li
      className={`jp-PydockPanel-item jp-PydockContainer ${busy ? 'jp-mod-busy' : ''}`}
      data-name={name}
      data-state={c.State}
      data-display-state={state}
    >
      <span className="jp-PydockState" style={{ background: STATE_COLORS[state] }} title={state} />
      <div className="jp-PydockPanel-main">
        <div className="jp-PydockPanel-title" title={name}>
          {name}
        </div>
        <div className="jp-PydockPanel-detail">
          <span className="jp-PydockContainer-status">{busy ?? status}</span>
          <span className="jp-PydockContainer-image" title={c.Image}>
            {c.Image}
          </span>
        </div>
        <div className="jp-PydockPanel-detail">
          <a
            className="jp-PydockContainer-id"
            href="#"
            title={`Inspect ${c.Id}`}
            onClick={e => {
              e.preventDefault();
              actions.inspect('containers', c.Id, name);
            }}
          >
            {shortId(c.Id)}
          </a>
          {c.Command && (
            <code className="jp-PydockContainer-command" title={c.Command}>
              {c.Command}
            </code>
          )}
        </div>
        {(c.Ports ?? []).length > 0 && <Ports container={c} name={name} />}
        {usage && (
          <div className="jp-PydockPanel-detail jp-PydockContainer-usage">
            <span className="jp-PydockContainer-cpu">CPU {usage.cpu === null ? '…' : `${usage.cpu.toFixed(2)}%`}</span>
            <span className="jp-PydockContainer-mem">
              MEM {humanSize(usage.memory)}
              {usage.limit ? ` / ${humanSize(usage.limit)}` : ''}
            </span>
          </div>
        )}
      </div>
      <RowActions actions={rowActions} report={actions.report} busy={busy !== null} run={run} />
    </li>
  );
}

/** Published TCP ports open through Jupyter's proxy; the rest are plain text. */
function Ports({ container: c, name }: { container: IContainer; name: string }): JSX.Element {
  const baseUrl = PageConfig.getBaseUrl();
  return (
    <div className="jp-PydockPanel-detail jp-PydockContainer-ports">
      {c.Ports.map((p, i) => {
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
      })}
    </div>
  );
}
