/**
 * The panel's volume and network sections, and the one-off documents its
 * views show (inspect JSON, image history).
 *
 * Like the container and image lists, each section refetches its list when the
 * engine reports an event of its type, and after the event stream reconnects.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { checkedRequest, DockerModel, enc, EngineError, errorMessage, IEngineEvent, Requester } from './model';

/** How long a list whose request got no answer at all waits before asking again. */
const RETRY_MS = 2000;

export interface IVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt?: string;
}

export interface INetwork {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
}

/** How each section lists, creates and removes its objects through the Docker API. */
interface ISectionApi<T> {
  /** The event type (`Type`) that changes this list. */
  eventType: string;
  list(request: Requester): Promise<T[]>;
  create(request: Requester, name: string): Promise<void>;
  /** What a `DELETE` names: a volume goes by name, a network by ID. */
  key(item: T): string;
  path: string;
}

const json = { 'Content-Type': 'application/json' };

export const VOLUMES: ISectionApi<IVolume> = {
  eventType: 'volume',
  path: 'volumes',
  async list(request) {
    const resp = await checkedRequest(request, 'volumes', { method: 'GET' });
    const vols = ((await resp.json()) as { Volumes: IVolume[] | null }).Volumes ?? [];
    return vols.sort((a, b) => a.Name.localeCompare(b.Name));
  },
  async create(request, name) {
    await checkedRequest(request, 'volumes/create', { method: 'POST', headers: json, body: JSON.stringify({ Name: name }) });
  },
  key: v => v.Name
};

export const NETWORKS: ISectionApi<INetwork> = {
  eventType: 'network',
  path: 'networks',
  async list(request) {
    const resp = await checkedRequest(request, 'networks', { method: 'GET' });
    return ((await resp.json()) as INetwork[]).sort((a, b) => a.Name.localeCompare(b.Name));
  },
  async create(request, name) {
    const body = JSON.stringify({ Name: name, Driver: 'bridge', CheckDuplicate: true });
    await checkedRequest(request, 'networks/create', { method: 'POST', headers: json, body });
  },
  key: n => n.Id
};

/** The networks Docker makes itself; they cannot be removed. */
export const PREDEFINED_NETWORKS = ['bridge', 'host', 'none'];

/** One section's list, kept current from the engine's events. */
export class SectionModel<T> {
  items: T[] = [];
  error: string | null = null;
  private _changed = new Signal<this, void>(this);
  private inflight: Promise<void> | null = null;
  private again = false;
  private wasConnected = false;

  constructor(
    private docker: DockerModel,
    readonly api: ISectionApi<T>
  ) {
    docker.event.connect(this.onEvent, this);
    docker.changed.connect(this.onModelChanged, this);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Refetches the list; a call during a fetch queues exactly one more. */
  refresh(): Promise<void> {
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    this.inflight = this.fetch().finally(() => {
      this.inflight = null;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    });
    return this.inflight;
  }

  async create(name: string): Promise<void> {
    await this.api.create(this.docker.requester, name);
    await this.refresh();
  }

  async remove(item: T): Promise<void> {
    await checkedRequest(this.docker.requester, `${this.api.path}/${enc(this.api.key(item))}`, { method: 'DELETE' });
    await this.refresh();
  }

  dispose(): void {
    Signal.clearData(this);
  }

  private async fetch(): Promise<void> {
    try {
      this.items = await this.api.list(this.docker.requester);
      this.error = null;
    } catch (err) {
      this.error = errorMessage(err);
      if (!(err instanceof EngineError) && this.docker.connected) {
        // No answer (the browser saw a network change) while events flow: no event will say the list
        // is stale. A lost engine relists on reconnect instead.
        setTimeout(() => void this.refresh(), RETRY_MS);
      }
    }
    this._changed.emit();
  }

  private onEvent(_: DockerModel, event: IEngineEvent): void {
    if (event.Type === this.api.eventType) {
      void this.refresh();
    }
  }

  /** The event stream (re)opened: whatever changed before was missed. */
  private onModelChanged(model: DockerModel): void {
    if (model.connected && !this.wasConnected) {
      void this.refresh();
    }
    this.wasConnected = model.connected;
  }
}

/** One row of `/images/{name}/history`, newest layer first. */
export interface IHistoryEntry {
  Id: string;
  Created: number;
  CreatedBy: string;
  Size: number;
  Tags: string[] | null;
  Comment: string;
}

export async function imageHistory(request: Requester, image: string): Promise<IHistoryEntry[]> {
  const resp = await checkedRequest(request, `images/${enc(image)}/history`, { method: 'GET' });
  return (await resp.json()) as IHistoryEntry[];
}

/** What the inspect view can show: the `…/json` document of a container, image, volume or network. */
export type InspectKind = 'containers' | 'images' | 'volumes' | 'networks';

export async function inspect(request: Requester, kind: InspectKind, id: string): Promise<unknown> {
  const path = kind === 'volumes' || kind === 'networks' ? `${kind}/${enc(id)}` : `${kind}/${enc(id)}/json`;
  const resp = await checkedRequest(request, path, { method: 'GET' });
  return resp.json();
}
