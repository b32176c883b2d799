/**
 * CPU and memory of the running containers the list shows, as `docker stats` computes them.
 *
 * Polled with one-shot requests (`stream=false&one-shot=true`) rather than
 * one stats stream per container: a browser opens at most 6 HTTP/1.1
 * connections to the Jupyter server, the event stream and every open log
 * tab already hold one each, so a stream per running container would leave
 * none for the panel's own requests with a handful of containers running.
 * A one-shot request holds a connection only while the engine reads the
 * cgroup files (measured through the Jupyter server: median 12 ms, at most
 * 50 ms), whereas `stream=false` without one-shot waits for a second sample
 * (median 1014 ms). With the 2 s interval and two requests at a time, ten
 * visible running containers cost five 12 ms request pairs every 2 s, and a
 * connection stays free for everything else. The CPU baseline is the previous
 * poll's sample, kept here, instead of the engine's `precpu_stats`.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { checkedRequest, enc, Requester } from './model';

export interface ICpuStats {
  cpu_usage: { total_usage: number; percpu_usage?: number[] | null };
  system_cpu_usage?: number;
  online_cpus?: number;
}

export interface IMemoryStats {
  usage?: number;
  limit?: number;
  stats?: Record<string, number>;
}

export interface IStatsFrame {
  cpu_stats: ICpuStats;
  memory_stats: IMemoryStats;
}

export interface IUsage {
  /** CPU % since the previous sample (100 = one full CPU), null until there are two samples. */
  cpu: number | null;
  /** Bytes in use, page cache excluded. */
  memory: number;
  /** The memory limit in bytes (the host's memory without a limit of its own). */
  limit: number;
}

/** The docker CLI's `calculateCPUPercentUnix`: the container's share of the host's CPU time, times the CPUs. */
export function cpuPercent(prev: ICpuStats, cur: ICpuStats): number {
  const cpuDelta = cur.cpu_usage.total_usage - prev.cpu_usage.total_usage;
  const systemDelta = (cur.system_cpu_usage ?? 0) - (prev.system_cpu_usage ?? 0);
  const cpus = cur.online_cpus || cur.cpu_usage.percpu_usage?.length || 0;
  if (systemDelta > 0 && cpuDelta > 0) {
    return (cpuDelta / systemDelta) * cpus * 100;
  }
  return 0;
}

/** The docker CLI's `calculateMemUsageUnixNoCache`: usage less inactive page cache (cgroup v1 or v2 key). */
export function memoryUsage(m: IMemoryStats): number {
  const usage = m.usage ?? 0;
  const stats = m.stats ?? {};
  const v1 = stats.total_inactive_file;
  if (v1 !== undefined && v1 < usage) {
    return usage - v1;
  }
  const v2 = stats.inactive_file;
  if (v2 !== undefined && v2 < usage) {
    return usage - v2;
  }
  return usage;
}

/** The usage of one new sample against the previous one of the same container. */
export function usageOf(prev: IStatsFrame | undefined, cur: IStatsFrame): IUsage {
  return {
    cpu: prev ? cpuPercent(prev.cpu_stats, cur.cpu_stats) : null,
    memory: memoryUsage(cur.memory_stats),
    limit: cur.memory_stats.limit ?? 0
  };
}

/** Requests at once per poll; the rest of the browser's connections stay free. */
const CONCURRENT = 2;

/** Polls the stats of the containers `watch` names, every `interval` ms while any are named. */
export class StatsPoller {
  private ids: string[] = [];
  private samples = new Map<string, IStatsFrame>();
  private usages = new Map<string, IUsage>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private polling = false;
  /** Set while the panel is hidden (its sidebar closed): nothing is shown, so nothing is polled. */
  private suspended = false;
  private _changed = new Signal<this, void>(this);

  constructor(
    private request: Requester,
    private interval = 2000
  ) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  usage(id: string): IUsage | undefined {
    return this.usages.get(id);
  }

  /** The containers to poll (those shown and running); an empty list stops polling. */
  watch(ids: string[]): void {
    const keep = new Set(ids);
    for (const id of [...this.samples.keys()]) {
      if (!keep.has(id)) {
        this.samples.delete(id);
        this.usages.delete(id);
      }
    }
    const added = ids.some(id => !this.ids.includes(id));
    this.ids = ids;
    if (!ids.length) {
      this.stop();
    } else if (added) {
      this.kick();
    }
  }

  /** Stops polling until `resume`, keeping the watched set and the last samples. */
  suspend(): void {
    this.suspended = true;
    this.stop();
  }

  resume(): void {
    this.suspended = false;
    this.kick();
  }

  dispose(): void {
    this.ids = [];
    this.stop();
    Signal.clearData(this);
  }

  /** Polls now, unless a poll is running (it schedules the next) or polling is suspended. */
  private kick(): void {
    if (!this.polling && !this.suspended && this.ids.length) {
      this.stop();
      void this.poll();
    }
  }

  private stop(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private async poll(): Promise<void> {
    this.polling = true;
    const queue = [...this.ids];
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        await this.sample(id);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENT }, worker));
    this.polling = false;
    this._changed.emit();
    if (this.ids.length && this.timer === null && !this.suspended) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.poll();
      }, this.interval);
    }
  }

  private async sample(id: string): Promise<void> {
    try {
      const resp = await checkedRequest(this.request, `containers/${enc(id)}/stats?stream=false&one-shot=true`, {
        method: 'GET'
      });
      const frame = (await resp.json()) as IStatsFrame;
      if (!this.ids.includes(id)) {
        return; // no longer shown
      }
      this.usages.set(id, usageOf(this.samples.get(id), frame));
      this.samples.set(id, frame);
    } catch {
      // Stopped or removed meanwhile: the next listing drops it from the watched set.
    }
  }
}
