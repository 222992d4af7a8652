/**
 * @dsml/env-check: what `dsml check` says about the open notebook, in the status bar.
 *
 * For the current notebook it calls the server extension `dsml.lab.check`
 * (`GET <base_url>dsml/api/check?path=...&kernel=...`) when the notebook is opened, saved, or
 * its kernel changes, and shows "Env ✓ <environment>" or "Env ⚠ <n> issues". Clicking the
 * item lists the findings (cell, line, message) in a dialog.
 *
 * The package's second plugin, "Publish as app…", is in `publish.ts`.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { publishPlugin } from './publish';

/** One import or install of the notebook, checked (a `dsml check --json` finding). */
interface IFinding {
  cell: number | null;
  line: number;
  kind: string;
  name: string;
  status: string;
  optional: boolean;
  problem: boolean;
  text: string;
  message: string;
}

/** The endpoint's answer. */
interface ICheckResult {
  path: string;
  environment: string;
  display_name: string;
  version: string;
  supported: boolean;
  counts: { checked: number; problems: number; optional_missing: number };
  findings: IFinding[];
}

type State = 'checking' | 'ok' | 'warn' | 'error';

/** The status bar item: one line of text, a dialog on click. */
class EnvCheckItem extends Widget {
  constructor() {
    super();
    this.id = 'dsml-env-check';
    this.addClass('dsml-EnvCheck');
    this.node.setAttribute('role', 'button');
    this.node.addEventListener('click', () => void this.showFindings());
    this.show_('checking', 'Env …', 'Checking the notebook against its environment');
  }

  /** Emitted when the item should be shown or hidden. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** Whether a notebook is current. */
  get active(): boolean {
    return this._panel !== null;
  }

  /** Follow `panel` (the current notebook, or null). */
  follow(panel: NotebookPanel | null): void {
    this._panel = panel;
    this._activeStateChanged.emit();
    if (panel) {
      void panel.context.ready.then(() => this.check(panel));
    }
  }

  /** Ask the server about `panel`'s notebook, if it is still the one followed. */
  async check(panel: NotebookPanel): Promise<void> {
    if (panel !== this._panel || panel.isDisposed) {
      return;
    }
    const ticket = ++this._ticket;
    this.show_('checking', 'Env …', 'Checking the notebook against its environment');
    const settings = ServerConnection.makeSettings();
    const params = new URLSearchParams({ path: panel.context.path });
    const kernel = panel.sessionContext.session?.kernel?.name;
    if (kernel) {
      params.set('kernel', kernel); // the kernel it runs now, saved or not
    }
    const url =
      URLExt.join(settings.baseUrl, 'dsml/api/check') + '?' + params.toString();
    let result: ICheckResult | null = null;
    let problem = '';
    try {
      const response = await ServerConnection.makeRequest(url, {}, settings);
      const body = await response.json();
      if (response.ok) {
        result = body as ICheckResult;
      } else {
        problem = body.message || `HTTP ${response.status}`;
      }
    } catch (e) {
      problem = `the environment check did not answer: ${e}`;
    }
    if (ticket !== this._ticket) {
      return; // a newer check started meanwhile
    }
    this._result = result;
    this._problem = problem;
    if (!result) {
      this.show_('error', 'Env ?', problem);
    } else if (result.supported) {
      this.show_(
        'ok',
        `Env ✓ ${result.environment}`,
        `Every import and install is in ${result.display_name} (${result.version})`
      );
    } else {
      const n = result.counts.problems;
      this.show_(
        'warn',
        `Env ⚠ ${n} issue${n === 1 ? '' : 's'}`,
        `${n} import${n === 1 ? '' : 's'} or install${n === 1 ? '' : 's'} not in ` +
          `${result.display_name} (${result.version}): click for details`
      );
    }
  }

  /** The dialog listing what the environment does not satisfy. */
  async showFindings(): Promise<void> {
    const result = this._result;
    const body = document.createElement('div');
    body.className = 'dsml-EnvCheck-dialog';
    if (!result) {
      body.textContent = this._problem || 'The check has not finished yet.';
    } else {
      const listed = result.findings.filter(f => f.message);
      const intro = document.createElement('p');
      const env = `the curated environment ${result.environment} (${result.version})`;
      intro.textContent = listed.length
        ? `${result.path} checked against ${env}:`
        : `Every import and install of ${result.path} is in ${env}.`;
      body.appendChild(intro);
      if (listed.length) {
        const table = document.createElement('table');
        const head = table.createTHead().insertRow();
        for (const title of ['Cell', 'Line', 'Message']) {
          const th = document.createElement('th');
          th.textContent = title;
          head.appendChild(th);
        }
        const rows = table.createTBody();
        for (const f of listed) {
          const row = rows.insertRow();
          row.className = f.problem ? 'dsml-EnvCheck-problem' : 'dsml-EnvCheck-note';
          row.insertCell().textContent = f.cell === null ? '' : String(f.cell);
          row.insertCell().textContent = String(f.line);
          row.insertCell().textContent = (f.problem ? '' : 'note: ') + f.message;
        }
        body.appendChild(table);
      }
    }
    await showDialog({
      title: 'Environment check',
      body: new Widget({ node: body }),
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
  }

  private show_(state: State, text: string, title: string): void {
    this.node.textContent = text;
    this.node.title = title;
    this.node.dataset.state = state;
  }

  private _panel: NotebookPanel | null = null;
  private _ticket = 0;
  private _result: ICheckResult | null = null;
  private _problem = '';
  private _activeStateChanged = new Signal<this, void>(this);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@dsml/env-check:plugin',
  description: 'Shows whether the open notebook fits its curated environment.',
  autoStart: true,
  requires: [INotebookTracker, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar
  ) => {
    const item = new EnvCheckItem();
    const watched = new WeakSet<NotebookPanel>();
    const watch = (panel: NotebookPanel) => {
      if (watched.has(panel)) {
        return;
      }
      watched.add(panel);
      panel.context.saveState.connect((_, state) => {
        if (state === 'completed') {
          void item.check(panel);
        }
      });
      panel.sessionContext.kernelChanged.connect(() => void item.check(panel));
    };
    tracker.widgetAdded.connect((_, panel) => watch(panel));
    tracker.currentChanged.connect((_, panel) => {
      if (panel) {
        watch(panel);
      }
      item.follow(panel);
    });
    if (tracker.currentWidget) {
      watch(tracker.currentWidget);
      item.follow(tracker.currentWidget);
    }
    statusBar.registerStatusItem('@dsml/env-check:status', {
      item,
      align: 'left',
      rank: 5,
      isActive: () => item.active,
      activeStateChanged: item.activeStateChanged
    });
  }
};

export default [plugin, publishPlugin];
