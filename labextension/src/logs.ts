/** A main-area tab with a container's live logs. */
import { Widget } from '@lumino/widgets';

import { DockerModel, errorMessage, ILogChunk } from './model';

/** A scrolling, themed output pane that stays pinned to the bottom while the user is there. */
class OutputView extends Widget {
  protected output: HTMLPreElement;
  protected abort = new AbortController();

  constructor(
    protected model: DockerModel,
    readonly containerId: string
  ) {
    super();
    this.addClass('jp-PydockOutput');
    this.output = document.createElement('pre');
    this.output.className = 'jp-PydockOutput-text';
    this.node.appendChild(this.output);
  }

  dispose(): void {
    this.abort.abort();
    super.dispose();
  }

  protected append(chunk: ILogChunk): void {
    this.write('span', `jp-PydockOutput-${chunk.stream}`, chunk.text);
  }

  protected note(text: string): void {
    this.write('div', 'jp-PydockOutput-note', `— ${text} —`);
  }

  protected write(tag: string, className: string, text: string): void {
    const el = document.createElement(tag);
    el.className = className;
    el.textContent = text;
    const n = this.output;
    const atBottom = n.scrollHeight - n.scrollTop - n.clientHeight < 4;
    n.appendChild(el);
    if (atBottom) {
      n.scrollTop = n.scrollHeight;
    }
  }
}

export class LogView extends OutputView {
  constructor(model: DockerModel, containerId: string) {
    super(model, containerId);
    this.addClass('jp-PydockLogs');
    void this.follow();
  }

  private async follow(): Promise<void> {
    try {
      await this.model.followLogs(this.containerId, c => this.append(c), this.abort.signal);
      this.note('log stream ended (container stopped)');
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.note(`log stream failed: ${errorMessage(err)}`);
      }
    }
  }
}
