/**
 * The list's status text ("Up 3 minutes", "Exited (0) 5 seconds ago"),
 * recomputed in the browser as time passes.
 *
 * The listing's `Status` is text fixed at the time of the request; the
 * timestamps it was made from are only in a container's inspect `State`.
 * `ContainerClock` fetches that `State` once per container and again only
 * after an engine event about it, so the text ages on a timer without
 * refetching anything.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { checkedRequest, enc, EngineError, IContainer, Requester } from './model';

/** The part of `/containers/{id}/json`'s `State` the status text is made from. */
export interface IContainerState {
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  ExitCode: number;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: string } | null;
}

/** Docker's zero time, which a container never started or never stopped carries. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** go-units' HumanDuration, which `docker ps` and the engine's own Status use. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) {
    return 'Less than a second';
  }
  if (s === 1) {
    return '1 second';
  }
  if (s < 60) {
    return `${s} seconds`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes === 1) {
    return 'About a minute';
  }
  if (minutes < 60) {
    return `${minutes} minutes`;
  }
  const hours = Math.round(s / 3600);
  if (hours === 1) {
    return 'About an hour';
  }
  if (hours < 48) {
    return `${hours} hours`;
  }
  if (hours < 24 * 7 * 2) {
    return `${Math.floor(hours / 24)} days`;
  }
  if (hours < 24 * 30 * 2) {
    return `${Math.floor(hours / 24 / 7)} weeks`;
  }
  if (hours < 24 * 365 * 2) {
    return `${Math.floor(hours / 24 / 30)} months`;
  }
  return `${Math.floor(hours / 24 / 365)} years`;
}

function since(timestamp: string, now: number): string {
  return humanDuration(now - Date.parse(timestamp));
}

/** dockerd's `State.String()`: the Status column for this state at time `now` (ms). */
export function statusText(state: IContainerState, now: number): string {
  if (state.Status === 'created') {
    return 'Created';
  }
  if (state.Status === 'removing') {
    return 'Removal In Progress';
  }
  if (state.Status === 'dead') {
    return 'Dead';
  }
  if (state.Restarting) {
    return `Restarting (${state.ExitCode}) ${since(state.FinishedAt, now)} ago`;
  }
  if (state.Running) {
    const up = `Up ${since(state.StartedAt, now)}`;
    if (state.Paused) {
      return `${up} (Paused)`;
    }
    const health = state.Health?.Status;
    if (health && health !== 'none') {
      return health === 'starting' ? `${up} (health: starting)` : `${up} (${health})`;
    }
    return up;
  }
  if (!state.FinishedAt || state.FinishedAt === ZERO_TIME) {
    return 'Created';
  }
  return `Exited (${state.ExitCode}) ${since(state.FinishedAt, now)} ago`;
}

/** Container event actions that leave its State alone: Docker's exec (health probes too), attach, copy, inspection. */
const STATELESS_ACTION = /^(exec_|attach|detach|resize|top|archive-path|extract-to-dir|export|copy|commit|rename|update)/;

/** Whether a container event with this action may have changed the container's State. */
export function changesState(action: string): boolean {
  return !STATELESS_ACTION.test(action);
}

/** At most this many inspect requests at once, so a long list does not take every browser connection. */
const CONCURRENT = 2;
/** How long a container whose inspect got no answer waits before it is asked again. */
const RETRY_MS = 2000;

/** Each listed container's inspect `State`, fetched once and again after an event about it. */
export class ContainerClock {
  private states = new Map<string, IContainerState>();
  private wanted: string[] = [];
  private listed: IContainer[] = [];
  private pending = new Set<string>();
  private active = 0;
  /** Bumped by `forget`, so an answer requested before the event does not overwrite it. */
  private generation = new Map<string, number>();
  private _changed = new Signal<this, void>(this);

  constructor(private request: Requester) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The status text of `c` now, or the listing's own text until its `State` has arrived. */
  status(c: IContainer, now: number = Date.now()): string {
    const state = this.states.get(c.Id);
    return state ? statusText(state, now) : c.Status;
  }

  /** Fetches the `State` of listed containers not known yet and drops those no longer listed. */
  sync(containers: IContainer[]): void {
    this.listed = containers;
    const ids = new Set(containers.map(c => c.Id));
    for (const id of this.states.keys()) {
      if (!ids.has(id)) {
        this.states.delete(id);
      }
    }
    for (const id of ids) {
      if (!this.states.has(id) && !this.pending.has(id)) {
        this.pending.add(id);
        this.wanted.push(id);
      }
    }
    this.pump();
  }

  /** Forgets what is known of `id` (an event changed it); the next `sync` fetches it again. */
  forget(id: string): void {
    this.states.delete(id);
    this.generation.set(id, (this.generation.get(id) ?? 0) + 1);
  }

  private pump(): void {
    while (this.active < CONCURRENT && this.wanted.length) {
      const id = this.wanted.shift()!;
      this.active++;
      void this.fetch(id).finally(() => {
        this.active--;
        this.pending.delete(id);
        this.pump();
      });
    }
  }

  private async fetch(id: string): Promise<void> {
    const generation = this.generation.get(id);
    try {
      const resp = await checkedRequest(this.request, `containers/${enc(id)}/json`, { method: 'GET' });
      const state = ((await resp.json()) as { State: IContainerState }).State;
      if (this.generation.get(id) !== generation) {
        return this.fetch(id); // changed while asked: ask again
      }
      this.states.set(id, state);
      this._changed.emit();
    } catch (err) {
      // Removed meanwhile (the listing's own text stays until it drops the row), or no answer at
      // all (the browser saw a network change): ask again shortly.
      if (!(err instanceof EngineError)) {
        setTimeout(() => this.sync(this.listed), RETRY_MS);
      }
    }
  }
}
