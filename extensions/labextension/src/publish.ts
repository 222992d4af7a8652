/**
 * "Publish as app…": publish a notebook as a Voila app of the platform's apps service.
 *
 * The command is in the notebook toolbar, the command palette and the file browser's context
 * menu (notebooks). It saves the notebook if it has unsaved changes, asks title, description,
 * environment and who to share with, and publishes through the server extension
 * `dsml.lab.apps` (`<base_url>dsml/api/apps/...`), which reads the notebook and the files it
 * names and calls the apps service as the server's owner. A notebook already published is
 * published again to its app (a new version at the same link). The link is shown at the end,
 * with a Copy button; the service's error message, if any, in a dialog.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  showDialog
} from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { CommandToolbarButton, launchIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

/** The command's id. */
export const COMMAND = 'dsml:publish-app';

/** The platform's groups an app can be shared with (the hub makes them). */
export const GROUPS = ['analysts', 'data-scientists', 'stakeholders', 'newcomers'];

/** A curated environment, as `GET dsml/api/apps/environments` lists it. */
interface IEnvironment {
  name: string;
  display_name?: string;
  version?: string;
}

/** The app a notebook is published as, from `GET dsml/api/apps/for`. */
interface IExisting {
  app: {
    slug: string;
    title: string;
    description?: string;
    current_version: number;
    shared?: { users?: string[]; groups?: string[]; everyone?: boolean };
  };
  version: { version: number };
  latest_version: number;
}

/** What the dialog asks. */
interface IPublishForm {
  title: string;
  description: string;
  environment: string;
  share_groups: string[];
  everyone: boolean;
  share_users: string[];
}

/** An error answer of the server extension or the service, with its message. */
class PublishError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** Call `dsml/api/apps/<endpoint>` on this server; the JSON answer, or a PublishError. */
async function callApi<T>(
  endpoint: string,
  init: RequestInit = {},
  params?: Record<string, string>
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'dsml/api/apps', endpoint);
  if (params) {
    url += '?' + new URLSearchParams(params).toString();
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (e) {
    throw new PublishError(0, `this JupyterLab server did not answer: ${e}`);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message =
      (body && body.message) || text.slice(0, 300) || response.statusText;
    throw new PublishError(response.status, message);
  }
  return body as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, value);
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Who an app is shared with, in words ("everyone", "group stakeholders", "ana"). */
function sharedWith(shared?: {
  users?: string[];
  groups?: string[];
  everyone?: boolean;
}): string[] {
  return [
    ...(shared?.everyone ? ['everyone'] : []),
    ...(shared?.groups || []).map(g => `group ${g}`),
    ...(shared?.users || [])
  ];
}

/** A labelled field of the form. */
function field(form: HTMLElement, label: string, input: HTMLElement): void {
  const id = `dsml-publish-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const row = element('div', { class: 'dsml-Publish-field' });
  row.appendChild(element('label', { for: id }, label));
  row.appendChild(input);
  form.appendChild(row);
}

/** The dialog's body: the form, read by `getValue` when Publish is pressed. */
class PublishForm extends Widget implements Dialog.IBodyWidget<IPublishForm> {
  constructor(
    path: string,
    environments: IEnvironment[],
    defaultEnvironment: string | null,
    existing: IExisting | null
  ) {
    super({ node: element('form', { class: 'dsml-Publish-form' }) });
    const form = this.node;
    form.addEventListener('submit', e => e.preventDefault());
    if (existing) {
      const n = existing.latest_version;
      form.appendChild(
        element(
          'p',
          { class: 'dsml-Publish-existing' },
          `This notebook is published as ${existing.app.title} (version ${n}): ` +
            `publishing makes version ${n + 1}.`
        )
      );
      const who = sharedWith(existing.app.shared);
      form.appendChild(
        element(
          'p',
          { class: 'dsml-Publish-shared' },
          who.length
            ? `It is shared with ${who.join(', ')}; what you tick below is added.`
            : 'It is shared with nobody yet.'
        )
      );
    }
    this._title = element('input', { type: 'text', required: '' });
    this._title.value = existing
      ? existing.app.title
      : PathExt.basename(path, PathExt.extname(path));
    field(form, 'Title', this._title);

    this._description = element('textarea', { rows: '2' });
    this._description.value = existing?.app.description || '';
    field(form, 'Description', this._description);

    this._environment = element('select');
    for (const env of environments) {
      const option = element(
        'option',
        { value: env.name },
        env.display_name && env.display_name !== env.name
          ? `${env.name} — ${env.display_name}`
          : env.name
      );
      this._environment.appendChild(option);
    }
    if (defaultEnvironment) {
      this._environment.value = defaultEnvironment;
    }
    field(form, 'Environment', this._environment);

    const groups = element('fieldset', { class: 'dsml-Publish-groups' });
    groups.appendChild(element('legend', {}, 'Share with groups'));
    for (const group of GROUPS) {
      const box = element('input', { type: 'checkbox', value: group });
      const label = element('label');
      label.appendChild(box);
      label.appendChild(document.createTextNode(` ${group}`));
      groups.appendChild(label);
      this._groups.push(box);
    }
    this._everyone = element('input', { type: 'checkbox', value: 'everyone' });
    const everyone = element('label');
    everyone.appendChild(this._everyone);
    everyone.appendChild(document.createTextNode(' Everyone'));
    groups.appendChild(everyone);
    form.appendChild(groups);

    this._users = element('input', {
      type: 'text',
      placeholder: 'e.g. ana, ben'
    });
    field(form, 'Share with users (comma separated)', this._users);
    this.addClass('dsml-Publish');
  }

  getValue(): IPublishForm {
    return {
      title: this._title.value.trim(),
      description: this._description.value.trim(),
      environment: this._environment.value,
      share_groups: this._groups.filter(b => b.checked).map(b => b.value),
      everyone: this._everyone.checked,
      share_users: this._users.value
        .split(',')
        .map(u => u.trim())
        .filter(u => u)
    };
  }

  private _title: HTMLInputElement;
  private _description: HTMLTextAreaElement;
  private _environment: HTMLSelectElement;
  private _groups: HTMLInputElement[] = [];
  private _everyone: HTMLInputElement;
  private _users: HTMLInputElement;
}

async function showError(title: string, message: string): Promise<void> {
  const body = element('div', { class: 'dsml-Publish-error' }, message);
  await showDialog({
    title,
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

/** The link of the published app, clickable, with a Copy button. */
async function showLink(answer: any): Promise<void> {
  const url: string = answer.url;
  const body = element('div', { class: 'dsml-Publish-done' });
  body.appendChild(
    element(
      'p',
      {},
      `${answer.app.title} is published (version ${answer.version.version}). Its link:`
    )
  );
  const row = element('div', { class: 'dsml-Publish-link' });
  const link = element(
    'a',
    { href: url, target: '_blank', rel: 'noopener' },
    url
  );
  row.appendChild(link);
  const copy = element('button', { type: 'button', class: 'jp-mod-styled' }, 'Copy');
  copy.addEventListener('click', () => {
    Clipboard.copyToSystem(url);
    copy.textContent = 'Copied';
  });
  row.appendChild(copy);
  body.appendChild(row);
  const who = sharedWith(answer.app.shared);
  body.appendChild(
    element(
      'p',
      {},
      who.length ? `Shared with ${who.join(', ')}.` : 'Shared with nobody yet.'
    )
  );
  await showDialog({
    title: 'Published',
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

/** Save `path`'s open notebook if it has unsaved changes (the server publishes the file). */
async function saveIfDirty(
  tracker: INotebookTracker,
  path: string
): Promise<void> {
  const panel = tracker.find(p => p.context.path === path);
  if (panel && panel.context.model.dirty) {
    await panel.context.save();
  }
}

/** The whole flow for one notebook path. */
export async function publishNotebook(
  tracker: INotebookTracker,
  path: string
): Promise<void> {
  try {
    await saveIfDirty(tracker, path);
  } catch (e) {
    return showError('Cannot publish', `${path} could not be saved: ${e}`);
  }
  const panel: NotebookPanel | undefined = tracker.find(
    p => p.context.path === path
  );
  const params: Record<string, string> = { path };
  const kernel = panel?.sessionContext.session?.kernel?.name;
  if (kernel) {
    params.kernel = kernel;
  }
  let environments: { environments: IEnvironment[]; default: string | null };
  let existing: IExisting | null;
  try {
    [environments, existing] = await Promise.all([
      callApi<{ environments: IEnvironment[]; default: string | null }>(
        'environments',
        {},
        params
      ),
      callApi<IExisting | null>('for', {}, { path })
    ]);
  } catch (e) {
    return showError('Cannot publish', (e as Error).message);
  }
  const form = new PublishForm(
    path,
    environments.environments,
    environments.default,
    existing
  );
  const result = await showDialog({
    title: existing ? `Publish a new version of ${existing.app.title}` : 'Publish as app',
    body: form,
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Publish' })
    ],
    focusNodeSelector: 'input'
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  const request: Record<string, unknown> = { path, ...result.value };
  if (existing) {
    request.slug = existing.app.slug;
  }
  let answer: any;
  try {
    answer = await callApi('publish', {
      method: 'POST',
      body: JSON.stringify(request)
    });
  } catch (e) {
    const status = (e as PublishError).status;
    return showError(
      status ? `Publishing failed (HTTP ${status})` : 'Publishing failed',
      (e as Error).message
    );
  }
  await showLink(answer);
}

export const publishPlugin: JupyterFrontEndPlugin<void> = {
  id: '@dsml/env-check:publish',
  description: 'Publish a notebook as an app of the platform (Voila), and share it.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const selectedNotebook = (): string | null => {
      if (!browser) {
        return null;
      }
      for (const item of browser.selectedItems()) {
        if (item.type === 'notebook') {
          return item.path;
        }
      }
      return null;
    };
    const pathOf = (args: any): string | null =>
      args.fromBrowser
        ? selectedNotebook()
        : tracker.currentWidget?.context.path ?? null;
    app.commands.addCommand(COMMAND, {
      label: 'Publish as app…',
      caption: 'Publish this notebook as an app (Voila) and share its link',
      icon: launchIcon,
      isEnabled: args => pathOf(args) !== null,
      execute: async args => {
        const path = pathOf(args);
        if (path) {
          await publishNotebook(tracker, path);
        }
      }
    });
    palette?.addItem({ command: COMMAND, category: 'Notebook Operations' });
    app.contextMenu.addItem({
      command: COMMAND,
      args: { fromBrowser: true },
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 3
    });
    tracker.widgetAdded.connect((_, panel) => {
      const button = new CommandToolbarButton({
        commands: app.commands,
        id: COMMAND,
        label: 'Publish'
      });
      button.addClass('dsml-PublishButton');
      // next to the cell type picker; at the end if this toolbar has none
      if (!panel.toolbar.insertAfter('cellType', 'dsml-publish', button)) {
        panel.toolbar.addItem('dsml-publish', button);
      }
    });
  }
};
