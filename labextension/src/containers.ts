/**
 * What the container list shows, computed from the engine's listing alone:
 * which rows pass the search and state filter, how they group into compose
 * projects, and which of Docker's states (plus health) colours each row.
 */
import { containerName } from './format';
import { IContainer } from './model';

/** The list's state filter: `running` is what `docker ps` shows, `stopped` what only `-a` adds. */
export type StateFilter = 'all' | 'running' | 'stopped';

/** The states a row is coloured by: Docker's container states, with health splitting off `unhealthy`. */
export type DisplayState =
  | 'running'
  | 'unhealthy'
  | 'paused'
  | 'restarting'
  | 'created'
  | 'exited'
  | 'dead'
  | 'removing';

/** One colour per state, all theme variables so light and dark themes both apply. */
export const STATE_COLORS: Record<DisplayState, string> = {
  running: 'var(--jp-success-color1)',
  unhealthy: 'var(--jp-error-color1)',
  paused: 'var(--jp-info-color1)',
  restarting: 'var(--jp-warn-color1)',
  created: 'var(--jp-brand-color2)',
  exited: 'var(--jp-layout-color4)',
  dead: 'var(--jp-error-color3)',
  removing: 'var(--jp-warn-color3)'
};

/** The compose label `docker compose` sets on every container of a project. */
export const COMPOSE_PROJECT = 'com.docker.compose.project';

/** `docker ps` without `-a` lists these: everything with a live process. */
export function isRunning(c: IContainer): boolean {
  return c.State === 'running' || c.State === 'paused' || c.State === 'restarting';
}

export function displayState(c: IContainer): DisplayState {
  if (c.State === 'running' && /\(unhealthy\)/.test(c.Status)) {
    return 'unhealthy';
  }
  return c.State in STATE_COLORS ? (c.State as DisplayState) : 'exited';
}

/**
 * Rows whose name, image, short ID, command or compose project contain every
 * word of `query` (case-insensitive), in the given state filter.
 */
export function filterContainers(list: IContainer[], query: string, filter: StateFilter): IContainer[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return list.filter(c => {
    if (filter !== 'all' && isRunning(c) !== (filter === 'running')) {
      return false;
    }
    const text = [containerName(c), c.Image, c.Id.slice(0, 12), c.Command ?? '', composeProject(c) ?? '']
      .join(' ')
      .toLowerCase();
    return words.every(w => text.includes(w));
  });
}

export function composeProject(c: IContainer): string | null {
  return c.Labels?.[COMPOSE_PROJECT] || null;
}

export interface IContainerGroup {
  /** The compose project, or null for containers that belong to none. */
  project: string | null;
  containers: IContainer[];
}

/**
 * Containers by compose project, projects in name order and containers by
 * name within each; containers of no project come last, in the engine's order.
 */
export function groupByProject(list: IContainer[]): IContainerGroup[] {
  const projects = new Map<string, IContainer[]>();
  const loose: IContainer[] = [];
  for (const c of list) {
    const p = composeProject(c);
    if (p === null) {
      loose.push(c);
    } else {
      projects.set(p, [...(projects.get(p) ?? []), c]);
    }
  }
  const byName = (a: IContainer, b: IContainer): number => containerName(a).localeCompare(containerName(b));
  const groups: IContainerGroup[] = [...projects.keys()]
    .sort((a, b) => a.localeCompare(b))
    .map(project => ({ project, containers: projects.get(project)!.sort(byName) }));
  if (loose.length) {
    groups.push({ project: null, containers: loose });
  }
  return groups;
}
