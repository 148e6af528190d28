// Floom's pages: a little vanilla script, no build step. It keeps the token the visitor
// typed in sessionStorage (this tab only; pages set no cookies) and sends it as a bearer
// header; it reads each action's form into its inputs, checks the schema's own limits
// before sending, runs the action through the REST API (trigger_source "ui") and shows
// the streamed events as they come; it follows an execution's events on its page; and
// it cancels runs and applies the operator's filters. Untrusted text (outputs, chunks,
// logs, error messages) only ever reaches the page as text (textContent), never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'floom.token';
  /** Chunks and log lines shown at most per run (the server caps events at 10,000). */
  const MAX_SHOWN_EVENTS = 1000;
  /** Rows and columns of an output table shown at most. */
  const MAX_ROWS = 500;
  const MAX_COLUMNS = 40;
  /** Reconnections to a dropped event stream before giving up. */
  const MAX_RETRIES = 8;
  const DEFAULT_SERVER = 'http://127.0.0.1:8000';
  /** A form's file inputs: the top-level object's own properties only (see form.rs). */
  const FILE_FIELDS = ':scope > .field > .fields > .field[data-kind="file"]';

  const $ = (root, selector) => root.querySelector(selector);
  const $$ = (root, selector) => Array.from(root.querySelectorAll(selector));
  const main = () => document.getElementById('main');

  // ---- The token ------------------------------------------------------------------

  const token = () => {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  };
  const setToken = (value) => {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      announce('This browser does not keep the token: storage is off.');
    }
  };
  const auth = () => (token() ? { Authorization: 'Bearer ' + token() } : {});

  function showTokenState() {
    for (const state of $$(document, '[data-token-state]')) {
      state.textContent = token() ? 'Token in use' : 'Token';
      state.classList.toggle('on', !!token());
    }
  }

  function announce(text) {
    const live = document.getElementById('announcer');
    if (!live) return;
    live.textContent = '';
    // A fresh text node makes screen readers speak the same message twice in a row.
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  // ---- Reloading <main> with the token -----------------------------------------------

  let pageWork = new AbortController();
  /** The address whose content <main> shows. */
  let shownAt = location.pathname + location.search;

  /** Fetches `url` with the token and puts its <main> in place of this page's. */
  async function reloadMain(url, push) {
    const target = url || location.href;
    const here = main();
    here.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(target, {
        headers: auth(),
        cache: 'no-store',
        credentials: 'omit',
      });
      const doc = new DOMParser().parseFromString(await response.text(), 'text/html');
      const next = doc.getElementById('main');
      if (!next) throw new Error('the answer has no page content');
      if (push) history.pushState(null, '', target);
      shownAt = location.pathname + location.search;
      document.title = doc.title;
      pageWork.abort();
      pageWork = new AbortController();
      here.replaceChildren(...Array.from(next.childNodes, (n) => document.importNode(n, true)));
      initMain();
    } catch (e) {
      announce('The page could not be loaded: ' + e.message);
    } finally {
      here.removeAttribute('aria-busy');
    }
  }

  // ---- Reading a form into inputs ----------------------------------------------------

  /** A JSON Pointer token: `~` and `/` escaped. */
  const pointerToken = (name) => name.replace(/~/g, '~0').replace(/\//g, '~1');
  const codePoints = (text) => Array.from(text).length;
  const control = (field) => $(field, ':scope > .control');
  const children = (field) => $$(field, ':scope > .fields > .field');
  const items = (field) => $$(field, ':scope > .items > .item > .field');

  /**
   * Reads `field` (a `.field` element) at JSON Pointer `pointer`: `{ present, value }`.
   * Each problem with the schema's limits is pushed on `problems` as `[field, message]`.
   */
  function read(field, pointer, problems) {
    field.dataset.pointer = pointer;
    const data = field.dataset;
    const input = control(field);
    switch (data.kind) {
      case 'text': {
        const value = input.value;
        if (value === '') return { present: false };
        const length = codePoints(value);
        if (data.minLength && length < Number(data.minLength)) {
          problems.push([field, `At least ${data.minLength} characters (this has ${length}).`]);
        }
        if (data.maxLength && length > Number(data.maxLength)) {
          problems.push([field, `At most ${data.maxLength} characters (this has ${length}).`]);
        }
        if (data.pattern) {
          let pattern = null;
          try {
            pattern = new RegExp(data.pattern, 'u');
          } catch (e) {
            // A pattern this browser cannot read is left to the server.
          }
          if (pattern && !pattern.test(value)) {
            problems.push([field, `Must match the pattern ${data.pattern}.`]);
          }
        }
        return { present: true, value };
      }
      case 'number':
      case 'integer': {
        if (input.validity && input.validity.badInput) {
          problems.push([field, 'Enter a number.']);
          return { present: true, value: null };
        }
        if (input.value.trim() === '') return { present: false };
        const value = Number(input.value);
        if (!Number.isFinite(value)) {
          problems.push([field, 'Enter a number.']);
          return { present: true, value: null };
        }
        if (data.kind === 'integer' && !Number.isInteger(value)) {
          problems.push([field, 'Enter a whole number.']);
        }
        if (data.minimum !== undefined && value < Number(data.minimum)) {
          problems.push([field, `At least ${data.minimum}.`]);
        }
        if (data.maximum !== undefined && value > Number(data.maximum)) {
          problems.push([field, `At most ${data.maximum}.`]);
        }
        if (data.exclusiveMinimum !== undefined && value <= Number(data.exclusiveMinimum)) {
          problems.push([field, `More than ${data.exclusiveMinimum}.`]);
        }
        if (data.exclusiveMaximum !== undefined && value >= Number(data.exclusiveMaximum)) {
          problems.push([field, `Less than ${data.exclusiveMaximum}.`]);
        }
        if (data.multipleOf !== undefined) {
          const ratio = value / Number(data.multipleOf);
          if (Math.abs(ratio - Math.round(ratio)) > 1e-9) {
            problems.push([field, `A multiple of ${data.multipleOf}.`]);
          }
        }
        return { present: true, value };
      }
      case 'boolean':
        return { present: true, value: input.checked };
      case 'file':
        // The file goes as a part of its own; the server puts its path in the inputs.
        if (!input.files || input.files.length === 0) return { present: false };
        return { present: true, file: input.files[0] };
      case 'choice':
        if (input.value === '') return { present: false };
        return { present: true, value: JSON.parse(input.value) };
      case 'json': {
        const text = input.value.trim();
        if (text === '') return { present: false };
        try {
          return { present: true, value: JSON.parse(text) };
        } catch (e) {
          problems.push([field, 'This is not valid JSON: ' + e.message]);
          return { present: true, value: null };
        }
      }
      case 'object': {
        const value = {};
        const inner = [];
        const missing = [];
        let any = false;
        for (const child of children(field)) {
          const name = child.dataset.name;
          const got = read(child, pointer + '/' + pointerToken(name), inner);
          if (got.present) {
            if (!got.file) value[name] = got.value;
            any = true;
          } else if ('required' in child.dataset) {
            missing.push(child);
          }
        }
        // An optional group left empty is left out, with whatever it would require.
        const present = any || 'required' in data || pointer === '';
        if (present) {
          problems.push(...inner);
          for (const child of missing) problems.push([child, 'This is required.']);
        }
        return { present, value };
      }
      case 'array': {
        const value = [];
        items(field).forEach((item, i) => {
          const got = read(item, pointer + '/' + i, problems);
          if (got.present) value.push(got.value);
          else problems.push([item, 'Fill this item in, or remove it.']);
        });
        if (value.length === 0 && !('required' in data)) return { present: false };
        if (data.minItems && value.length < Number(data.minItems)) {
          problems.push([field, `At least ${data.minItems} items.`]);
        }
        if (data.maxItems && value.length > Number(data.maxItems)) {
          problems.push([field, `At most ${data.maxItems} items.`]);
        }
        return { present: true, value };
      }
      default:
        return { present: false };
    }
  }

  /** The inputs of a run form, and the problems found in them. */
  function collect(form) {
    const root = $(form, ':scope > .field');
    const problems = [];
    const got = read(root, '', problems);
    let inputs = got.present ? got.value : {};
    if (root.dataset.kind === 'json' && (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs))) {
      if (got.present) problems.push([root, 'The inputs must be a JSON object, such as {"text": "..."}.']);
      inputs = {};
    }
    const files = $$(form, FILE_FIELDS)
      .map((field) => [field.dataset.name, control(field).files[0]])
      .filter(([, file]) => file);
    return { inputs, problems, files };
  }

  // ---- Showing problems at their fields ----------------------------------------------

  function clearProblems(form) {
    for (const slot of $$(form, '.error')) {
      slot.hidden = true;
      slot.textContent = '';
    }
    for (const invalid of $$(form, '[aria-invalid]')) invalid.removeAttribute('aria-invalid');
    const summary = $(form, '.form-error');
    summary.hidden = true;
    summary.textContent = '';
  }

  function markField(field, message) {
    const slot = $(field, ':scope > .error');
    slot.textContent = slot.textContent ? slot.textContent + ' ' + message : message;
    slot.hidden = false;
    const input = control(field) || field;
    input.setAttribute('aria-invalid', 'true');
  }

  function showProblems(form, problems, summaryText) {
    for (const [field, message] of problems) markField(field, message);
    const summary = $(form, '.form-error');
    summary.textContent = summaryText;
    summary.hidden = false;
    const first = problems.length ? problems[0][0] : null;
    const focus = first ? control(first) || $(first, '.control, button') : summary;
    if (focus && focus.focus) focus.focus();
  }

  /** The field a server's error path names, or the nearest enclosing one. */
  function fieldAt(form, path, message) {
    let pointer = path;
    // `"x" is a required property` is reported at the object: show it at `x`.
    const required = /^"((?:[^"\\]|\\.)*)" is a required property/.exec(message || '');
    if (required) {
      let name = required[1];
      try {
        name = JSON.parse('"' + required[1] + '"');
      } catch (e) {
        // Leave the name as written.
      }
      pointer = path + '/' + pointerToken(name);
    }
    for (;;) {
      const found = $$(form, '.field').find((f) => f.dataset.pointer === pointer);
      if (found) return found;
      if (pointer === '') return null;
      pointer = pointer.slice(0, pointer.lastIndexOf('/'));
    }
  }

  function showProblem(form, problem, status) {
    if (status === 401) {
      const why = token()
        ? `The token was refused (${(problem && problem.detail) || 'not valid'}): enter another under Token at the top of the page.`
        : 'This app needs a token: enter one under Token at the top of the page.';
      showProblems(form, [], why);
      const panel = document.getElementById('token-panel');
      if (panel) panel.open = true;
      const input = document.getElementById('token-input');
      if (input) input.focus();
      return;
    }
    const detail = problem && problem.detail ? problem.detail : `The server answered ${status}.`;
    const placed = [];
    for (const error of (problem && problem.errors) || []) {
      const field = fieldAt(form, error.path, error.message);
      if (field && field !== $(form, ':scope > .field')) placed.push([field, error.message]);
    }
    const count = placed.length;
    showProblems(
      form,
      placed,
      count ? `The server refused the inputs (${count} ${count === 1 ? 'field' : 'fields'} marked below): ${detail}` : detail,
    );
  }

  // ---- Events and outputs ------------------------------------------------------------

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const compact = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function table(rows) {
    const columns = [];
    for (const row of rows.slice(0, MAX_ROWS)) {
      for (const key of Object.keys(row)) {
        if (!columns.includes(key) && columns.length < MAX_COLUMNS) columns.push(key);
      }
    }
    const wrap = element('div', undefined, 'table-wrap');
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', `A table of ${rows.length} rows`);
    const t = element('table');
    const head = t.createTHead().insertRow();
    for (const column of columns) {
      const th = element('th', column);
      th.scope = 'col';
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows.slice(0, MAX_ROWS)) {
      const tr = body.insertRow();
      for (const column of columns) {
        const value = row[column];
        tr.insertCell().textContent = value === undefined || value === null ? '' : compact(value);
      }
    }
    wrap.appendChild(t);
    if (rows.length > MAX_ROWS) {
      wrap.appendChild(element('p', `The first ${MAX_ROWS} of ${rows.length} rows.`, 'help'));
    }
    return wrap;
  }

  /** An output: a table for a list of objects, text for a string, JSON otherwise. */
  function renderValue(value, depth) {
    if (typeof value === 'string') return element(depth ? 'div' : 'pre', value, 'text');
    // A number, boolean or null inside an object reads best as a plain value.
    if (depth && (value === null || typeof value !== 'object')) return element('div', JSON.stringify(value), 'text');
    if (Array.isArray(value) && value.length > 0 && value.every(isObject)) return table(value);
    if (depth === 0 && isObject(value)) {
      const keys = Object.keys(value);
      if (keys.length > 0 && keys.length <= MAX_COLUMNS) {
        const list = element('dl');
        for (const key of keys) {
          list.appendChild(element('dt', key));
          const dd = element('dd');
          dd.appendChild(renderValue(value[key], depth + 1));
          list.appendChild(dd);
        }
        return list;
      }
    }
    return element('pre', JSON.stringify(value, null, 2), 'json');
  }

  function durationText(ms) {
    if (typeof ms !== 'number') return '';
    if (ms < 10) return ms.toFixed(2) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }

  const STATUS_TEXT = {
    queued: 'Queued: waiting for a sandbox…',
    running: 'Running…',
    succeeded: 'Succeeded',
    failed: 'Failed',
    timed_out: 'Timed out',
    cancelled: 'Cancelled',
    awaiting_approval: 'Awaiting approval',
  };

  /** What a run's result area shows, fed one event at a time. */
  function resultView(root) {
    const status = $(root, '[data-status]') || $(root, '[data-status-text]');
    const chunks = $(root, '[data-chunks]');
    const output = $(root, '[data-output]');
    const logs = $(root, '[data-logs]');
    const badge = $(root, '[data-status-badge]');
    const note = $(root, '[data-waiting]');
    let shown = 0;
    let artifacts = null;
    const say = (text, state) => {
      if (badge) {
        badge.textContent = state;
        badge.className = 'badge s-' + state;
      } else {
        status.textContent = text;
      }
    };
    const view = {
      /** The href of an artifact of this run; set once the run's id is known. */
      artifactHref: null,
      reset() {
        artifacts = null;
        chunks.replaceChildren();
        logs.replaceChildren();
        output.replaceChildren();
        $(root, '[data-stream-box]').hidden = true;
        $(root, '[data-logs-box]').hidden = true;
        shown = 0;
      },
      status(text) {
        const where = badge ? note : status;
        where.textContent = text;
        where.hidden = false;
      },
      event(type, data) {
        if (note) note.hidden = true;
        if (type === 'start') {
          say(data.attempt > 1 ? `Running (attempt ${data.attempt})…` : STATUS_TEXT.running, 'running');
        } else if (type === 'chunk' || type === 'log') {
          shown += 1;
          if (shown > MAX_SHOWN_EVENTS) return;
          if (type === 'chunk') {
            $(root, '[data-stream-box]').hidden = false;
            chunks.appendChild(element('li', compact(data.data)));
            chunks.scrollTop = chunks.scrollHeight;
          } else {
            $(root, '[data-logs-box]').hidden = false;
            const stream = data.stream || data.level || 'log';
            logs.appendChild(element('li', `[${stream}] ${data.line !== undefined ? data.line : compact(data)}`, stream));
          }
          if (shown === MAX_SHOWN_EVENTS) {
            chunks.appendChild(element('li', 'Further events are not shown here; the API has them all.'));
          }
        } else if (type === 'approval') {
          const approval = data.approval || {};
          say(STATUS_TEXT.awaiting_approval, 'awaiting_approval');
          output.replaceChildren(
            element('h4', 'Proposed output, awaiting approval'),
            renderValue(approval.proposed_output, 0),
            element('p', `It counts once someone approves it (before ${approval.expires_at}).`, 'help'),
          );
          announce('The output awaits approval.');
        } else if (type === 'decision') {
          const approval = data.approval || {};
          const who = approval.decided_by ? ` by ${approval.decided_by}` : '';
          output.replaceChildren(element('p', `${approval.decision || 'decided'}${who}.`));
          announce(`The output was ${approval.decision || 'decided'}.`);
        } else if (type === 'end') {
          say(`${STATUS_TEXT.succeeded} in ${durationText(data.duration_ms)}`, 'succeeded');
          output.replaceChildren(element('h4', 'Output'), renderValue(data.output, 0));
          if (data.output !== null && typeof data.output === 'object') {
            const raw = element('details');
            raw.appendChild(element('summary', 'The output as JSON'));
            raw.appendChild(element('pre', JSON.stringify(data.output, null, 2), 'json'));
            output.appendChild(raw);
          }
          if (artifacts) output.appendChild(artifacts);
          announce('The run succeeded.');
        } else if (type === 'artifact') {
          // Shown under the output or the error, which come next.
          artifacts = element('div', undefined, 'artifacts');
          artifacts.appendChild(element('h4', 'Artifacts'));
          const list = element('ul');
          for (const artifact of data.artifacts || []) {
            const item = element('li');
            const href = view.artifactHref && view.artifactHref(artifact.name);
            const name = href ? element('a', artifact.name) : element('span', artifact.name);
            if (href) {
              name.href = href;
              name.setAttribute('download', artifact.name.split('/').pop());
            }
            item.appendChild(name);
            item.appendChild(document.createTextNode(` (${artifact.size} bytes, ${artifact.content_type})`));
            list.appendChild(item);
          }
          artifacts.appendChild(list);
        } else if (type === 'error') {
          const error = data.error || {};
          const state = data.status || 'failed';
          say(STATUS_TEXT[state] || state, state);
          const box = element('div', undefined, 'failure');
          box.setAttribute('role', 'alert');
          const line = element('p');
          line.appendChild(element('strong', error.code || state));
          line.appendChild(document.createTextNode(': ' + (error.message || '')));
          box.appendChild(line);
          if (error.app_code) {
            const code = element('p', "The app's code: ");
            code.appendChild(element('code', error.app_code));
            box.appendChild(code);
          }
          output.replaceChildren(box);
          if (artifacts) output.appendChild(artifacts);
        }
      },
    };
    return view;
  }

  /** The href of artifact `name` of execution `id`, readable with its view token. */
  function artifactHref(id, viewToken) {
    return (name) => `/api/executions/${encodeURIComponent(id)}/artifacts/${name.split('/').map(encodeURIComponent).join('/')}` +
      (viewToken ? `?view_token=${encodeURIComponent(viewToken)}` : '');
  }

  /** Reads an SSE body, calling `onEvent(id, type, data)` for each event. */
  async function readEvents(body, onEvent, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const stop = () => reader.cancel().catch(() => {});
    signal.addEventListener('abort', stop);
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id = null;
          let type = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const name = colon < 0 ? line : line.slice(0, colon);
            const field = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (name === 'id') id = Number(field);
            else if (name === 'event') type = field;
            else if (name === 'data') data.push(field);
          }
          if (data.length) onEvent(id, type, JSON.parse(data.join('\n')));
        }
      }
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  /**
   * Follows an execution's events to its end: `open(cursor)` answers the stream after
   * `cursor`; a dropped stream is resumed from the last event seen.
   */
  async function follow(view, open, signal) {
    let cursor = 0;
    let ended = false;
    let failures = 0;
    while (!ended && !signal.aborted) {
      try {
        const response = await open(cursor);
        if (!response.ok) {
          const problem = await response.json().catch(() => null);
          view.status((problem && problem.detail) || `The server answered ${response.status}.`);
          return false;
        }
        await readEvents(response.body, (id, type, data) => {
          if (id !== null) cursor = id;
          failures = 0;
          if (type === 'end' || type === 'error') ended = true;
          view.event(type, data);
        }, signal);
      } catch (e) {
        if (signal.aborted) return false;
      }
      if (!ended && !signal.aborted) {
        failures += 1;
        if (failures > MAX_RETRIES) {
          view.status('The connection to the run was lost; reload the page to follow it again.');
          return false;
        }
        await sleep(Math.min(250 * 2 ** failures, 5000));
      }
    }
    return ended;
  }

  // ---- Running an action -------------------------------------------------------------

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function snippets(section, inputs, files) {
    const slug = $(document, '[data-page="app"]').dataset.slug;
    const isPublic = $(document, '[data-page="app"]').dataset.public === 'true';
    const origin = location.origin;
    const action = section.dataset.action;
    const authLine = !isPublic || token() ? `  -H "Authorization: Bearer $FLOOM_TOKEN" \\\n` : '';
    const body = JSON.stringify({ inputs });
    const runUrl = shellQuote(origin + section.dataset.runPath + '?wait=true');
    // With files, the same run as multipart/form-data: the inputs, then a part per file.
    const curl = files.length
      ? `curl -X POST ${runUrl} \\\n` + authLine
        + `  -F ${shellQuote('inputs=' + JSON.stringify(inputs) + ';type=application/json')}`
        + files.map((name) => ` \\\n  -F ${shellQuote(name + '=@' + name + '.file')}`).join('')
      : `curl -X POST ${runUrl} \\\n`
        + "  -H 'Content-Type: application/json' \\\n" + authLine + `  -d ${shellQuote(body)}`;
    const target = 'default' in section.dataset ? slug : `${slug}/${action}`;
    const server = origin === DEFAULT_SERVER ? '' : `FLOOM_API_URL=${shellQuote(origin)} `;
    const cli = `${server}floom run ${target} ${shellQuote(JSON.stringify(inputs))}`
      + files.map((name) => ` --input ${shellQuote(name + '=@' + name + '.file')}`).join('');
    const call = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: section.dataset.tool, arguments: inputs },
    };
    const mcp = `curl -X POST ${shellQuote(origin + '/mcp')} \\\n`
      + "  -H 'Content-Type: application/json' \\\n"
      + "  -H 'Accept: application/json, text/event-stream' \\\n"
      + "  -H 'MCP-Protocol-Version: 2025-06-18' \\\n" + authLine
      + `  -d ${shellQuote(JSON.stringify(call))}\n\n`
      + `# Or give an agent this app's tools: ${origin}/mcp/apps/${slug}`;
    for (const [kind, text] of [['curl', curl], ['cli', cli], ['mcp', mcp]]) {
      $(section, `[data-snippet="${kind}"]`).textContent = text;
    }
  }

  function refreshSnippets(section) {
    const form = $(section, '[data-run-form]');
    const fileFields = $$(form, FILE_FIELDS);
    snippets(section, collect(form).inputs, fileFields.map((field) => field.dataset.name));
  }

  /**
   * A run request's headers and body: JSON, or with files `multipart/form-data` (a part
   * `inputs`, then one part per file named after its property; SPEC section 10).
   */
  function runBody(inputs, files) {
    const headers = { ...auth(), Accept: 'text/event-stream' };
    if (files.length === 0) {
      headers['Content-Type'] = 'application/json';
      return { headers, body: JSON.stringify({ inputs, trigger_source: 'ui' }) };
    }
    // The browser writes the multipart Content-Type with its boundary.
    const body = new FormData();
    body.append('inputs', new Blob([JSON.stringify(inputs)], { type: 'application/json' }));
    body.append('trigger_source', 'ui');
    for (const [name, file] of files) body.append(name, file, file.name);
    return { headers, body };
  }

  async function run(section, form) {
    clearProblems(form);
    const { inputs, problems, files } = collect(form);
    if (problems.length) {
      const n = problems.length;
      showProblems(form, problems, `Nothing was sent: ${n} ${n === 1 ? 'field needs' : 'fields need'} attention.`);
      return;
    }
    const result = $(section, '[data-result]');
    const view = resultView(result);
    const runButton = $(form, '[data-run]');
    const stop = $(form, '[data-stop]');
    const share = $(result, '[data-share]');
    view.reset();
    share.hidden = true;
    result.hidden = false;
    $(result, '[data-status]').textContent = 'Starting…';
    runButton.disabled = true;
    const signal = pageWork.signal;
    try {
      const response = await fetch(section.dataset.runPath + '?stream=true', {
        method: 'POST',
        ...runBody(inputs, files),
        credentials: 'omit',
        signal,
      });
      if (!response.ok) {
        result.hidden = true;
        const problem = await response.json().catch(() => null);
        showProblem(form, problem, response.status);
        return;
      }
      const id = response.headers.get('x-floom-execution-id');
      const viewToken = response.headers.get('x-floom-view-token');
      $(result, '[data-status]').textContent = STATUS_TEXT.queued;
      if (id && viewToken) {
        view.artifactHref = artifactHref(id, viewToken);
        const link = `/executions/${encodeURIComponent(id)}?view_token=${encodeURIComponent(viewToken)}`;
        const anchor = $(share, '[data-share-link]');
        anchor.href = link;
        anchor.textContent = location.origin + link;
        share.hidden = false;
        stop.hidden = false;
        stop.onclick = () => {
          fetch(`/api/executions/${encodeURIComponent(id)}/cancel?view_token=${encodeURIComponent(viewToken)}`, {
            method: 'POST',
            credentials: 'omit',
          }).catch(() => {});
        };
      }
      let first = response;
      await follow(view, (cursor) => {
        if (first) {
          const opened = first;
          first = null;
          return Promise.resolve(opened);
        }
        return fetch(`/api/executions/${encodeURIComponent(id)}/events?cursor=${cursor}&view_token=${encodeURIComponent(viewToken || '')}`, {
          credentials: 'omit',
          signal,
        });
      }, signal);
    } catch (e) {
      if (!signal.aborted) view.status('The run could not be started: ' + e.message);
    } finally {
      runButton.disabled = false;
      stop.hidden = true;
    }
  }

  // ---- Lists of items ----------------------------------------------------------------

  let nextItem = 0;

  function renumber(list) {
    const entries = $$(list, ':scope > .items > .item');
    entries.forEach((item, i) => {
      const label = $(item, ':scope > .field > label > .label-text, :scope > .field > legend > .label-text');
      if (label) {
        if (!label.dataset.base) label.dataset.base = label.textContent.trim();
        label.textContent = `${label.dataset.base} ${i + 1}`;
      }
      const remove = $(item, ':scope > [data-remove]');
      if (remove && label) remove.setAttribute('aria-label', `Remove ${label.textContent}`);
    });
    const max = list.dataset.maxItems;
    const add = $(list, ':scope > [data-add]');
    if (add) add.disabled = max !== undefined && entries.length >= Number(max);
  }

  function addItem(list) {
    const template = $(list, ':scope > template.item-template');
    const fresh = template.content.cloneNode(true);
    const tag = 'n' + (nextItem += 1);
    for (const node of $$(fresh, '[id], [for], [aria-describedby], [aria-labelledby]')) {
      for (const attribute of ['id', 'for', 'aria-describedby', 'aria-labelledby']) {
        const value = node.getAttribute(attribute);
        if (value) node.setAttribute(attribute, value.split('__item__').join(tag));
      }
    }
    const item = fresh.firstElementChild;
    $(list, ':scope > .items').appendChild(fresh);
    renumber(list);
    for (const nested of $$(item, '.list')) renumber(nested);
    const first = $(item, '.control');
    if (first) first.focus();
  }

  function removeItem(button) {
    const item = button.closest('.item');
    const list = item.closest('.list');
    const entries = $$(list, ':scope > .items > .item');
    const index = entries.indexOf(item);
    item.remove();
    renumber(list);
    const rest = $$(list, ':scope > .items > .item');
    const next = rest[Math.min(index, rest.length - 1)];
    const focus = next ? $(next, ':scope > [data-remove]') : $(list, ':scope > [data-add]');
    if (focus) focus.focus();
    announce('Item removed.');
  }

  // ---- Copying -------------------------------------------------------------------------

  async function copy(text, from) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      // Without the clipboard API (a page not served over HTTPS or from localhost):
      // select the text, so the visitor can copy it with the keyboard.
      const range = document.createRange();
      range.selectNodeContents(from);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      announce('Selected: press Ctrl+C (or ⌘C) to copy.');
      return;
    }
    announce('Copied.');
  }

  // ---- Cancelling ------------------------------------------------------------------------

  async function cancel(button) {
    const id = button.dataset.cancel;
    const viewToken = new URLSearchParams(location.search).get('view_token');
    const query = viewToken ? `?view_token=${encodeURIComponent(viewToken)}` : '';
    button.disabled = true;
    const response = await fetch(`/api/executions/${encodeURIComponent(id)}/cancel${query}`, {
      method: 'POST',
      headers: auth(),
      credentials: 'omit',
    }).catch(() => null);
    if (!response) {
      announce('The cancel request did not reach the server.');
    } else if (response.ok) {
      announce(`${id} is cancelled.`);
    } else {
      const problem = await response.json().catch(() => null);
      announce((problem && problem.detail) || `The server answered ${response.status}.`);
    }
    await reloadMain();
  }

  // ---- Approving ---------------------------------------------------------------------------

  async function decide(button, verb) {
    const box = button.closest('[data-approval]');
    const problem = $(box, '[data-approval-problem]');
    const say = (text) => {
      problem.replaceChildren(element('p', text));
      problem.hidden = false;
    };
    problem.hidden = true;
    const note = $(box, '[data-approval-note]').value.trim();
    const body = {};
    if (verb === 'approve') {
      const field = $(box, '[data-approval-output]');
      // Only a changed text is an edit: an unchanged one approves the output as proposed.
      if (field.value !== field.defaultValue) {
        try {
          body.output = JSON.parse(field.value);
        } catch (e) {
          say('The edited output is not JSON: ' + e.message);
          field.focus();
          return;
        }
      }
      if (note) body.annotation = note;
    } else if (note) {
      body.reason = note;
    }
    const id = button.dataset[verb];
    const viewToken = new URLSearchParams(location.search).get('view_token');
    const query = viewToken ? `?view_token=${encodeURIComponent(viewToken)}` : '';
    button.disabled = true;
    const response = await fetch(`/api/executions/${encodeURIComponent(id)}/${verb}${query}`, {
      method: 'POST',
      headers: { ...auth(), 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
    }).catch(() => null);
    button.disabled = false;
    if (!response) {
      say('The decision did not reach the server.');
      return;
    }
    if (!response.ok) {
      const answer = await response.json().catch(() => null);
      say((answer && answer.detail) || `The server answered ${response.status}.`);
      for (const error of (answer && answer.errors) || []) {
        problem.appendChild(element('p', `${error.path || '(the output)'}: ${error.message}`));
      }
      return;
    }
    announce(verb === 'approve' ? 'Approved.' : 'Rejected.');
    await reloadMain();
  }

  // ---- Each page -------------------------------------------------------------------------

  function initGallery(root) {
    const input = $(root, '#search');
    const count = $(root, '[data-search-count]');
    const cards = $$(root, '.card');
    const total = count.textContent.replace(/^\d+ of /, '');
    const filter = () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const card of cards) {
        const hit = words.every((word) => card.dataset.search.includes(word));
        card.hidden = !hit;
        if (hit) shown += 1;
      }
      count.textContent = `${shown} of ${total}`;
    };
    input.addEventListener('input', filter);
    filter();
  }

  function initApp(root) {
    for (const list of $$(root, '.list')) renumber(list);
    for (const section of $$(root, 'section.action')) refreshSnippets(section);
  }

  async function initExecution(root) {
    const id = root.dataset.execution;
    const wasTerminal = root.dataset.terminal === 'true';
    const viewToken = new URLSearchParams(location.search).get('view_token');
    const signal = pageWork.signal;
    const query = (cursor) => `?cursor=${cursor}` + (viewToken ? `&view_token=${encodeURIComponent(viewToken)}` : '');
    const view = resultView(root);
    view.artifactHref = artifactHref(id, viewToken);
    const shown = root.dataset.status;
    // The page shows the approval's state as it was rendered: when it changes while we
    // watch, render it again (then the decision's buttons come, or go).
    const watching = {
      ...view,
      event(type, data) {
        view.event(type, data);
        if ((type === 'approval' && shown !== 'awaiting_approval')
          || (type === 'decision' && shown === 'awaiting_approval')) {
          reloadMain();
        }
      },
    };
    const ended = await follow(watching, (cursor) => fetch(`/api/executions/${encodeURIComponent(id)}/events${query(cursor)}`, {
      headers: auth(),
      credentials: 'omit',
      signal,
    }), signal);
    // It ended while we watched: show its final facts (timings, no cancel button).
    if (ended && !wasTerminal && !signal.aborted) await reloadMain();
  }

  function initMain() {
    const root = $(main(), '[data-page]');
    showTokenState();
    if (!root) return;
    switch (root.dataset.page) {
      case 'gallery': initGallery(root); break;
      case 'app': initApp(root); break;
      case 'execution': initExecution(root); break;
      default: break;
    }
  }

  // ---- Wiring (once; <main> is replaced, the document's listeners stay) -------------------

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (form.matches('[data-token-form]')) {
      event.preventDefault();
      const value = $(form, 'input').value.trim();
      if (!value) return;
      setToken(value);
      $(form, 'input').value = '';
      const panel = document.getElementById('token-panel');
      if (panel) panel.open = false;
      showTokenState();
      announce('The token is in use in this tab.');
      reloadMain().then(() => main().focus());
    } else if (form.matches('[data-run-form]')) {
      event.preventDefault();
      run(form.closest('section.action'), form);
    } else if (form.matches('[data-swap-form]')) {
      event.preventDefault();
      const url = new URL(form.action, location.href);
      for (const [key, value] of new FormData(form)) {
        if (value !== '') url.searchParams.set(key, value);
      }
      reloadMain(url.href, true);
    } else if (form.matches('[data-search-form]')) {
      event.preventDefault();
      const q = $(form, 'input').value;
      history.replaceState(null, '', q ? `/?q=${encodeURIComponent(q)}` : '/');
    }
  });

  document.addEventListener('click', (event) => {
    const button = event.target.closest('button, a');
    if (!button) return;
    if (button.matches('[data-token-forget]')) {
      setToken('');
      showTokenState();
      announce('The token is forgotten.');
      reloadMain();
    } else if (button.matches('[data-add]')) {
      addItem(button.closest('.list'));
      refreshSnippets(button.closest('section.action'));
    } else if (button.matches('[data-remove]')) {
      const section = button.closest('section.action');
      removeItem(button);
      refreshSnippets(section);
    } else if (button.matches('[data-copy]')) {
      const code = $(button.closest('.snippet'), 'code');
      copy(code.textContent, code);
    } else if (button.matches('[data-copy-link]')) {
      const anchor = $(button.closest('[data-share]'), 'a');
      copy(anchor.href, anchor);
    } else if (button.matches('[data-copy-page]')) {
      copy(location.href, button);
    } else if (button.matches('[data-cancel]')) {
      cancel(button);
    } else if (button.matches('[data-approve]')) {
      decide(button, 'approve');
    } else if (button.matches('[data-reject]')) {
      decide(button, 'reject');
    } else if (button.matches('[data-swap-link]')) {
      event.preventDefault();
      reloadMain(button.href, true);
    }
  });

  document.addEventListener('input', (event) => {
    const section = event.target.closest && event.target.closest('section.action');
    if (section) refreshSnippets(section);
  });
  document.addEventListener('change', (event) => {
    const section = event.target.closest && event.target.closest('section.action');
    if (section) refreshSnippets(section);
  });

  // Back and forward through the operator's filters; a jump to a fragment (the skip
  // link) changes nothing to load.
  window.addEventListener('popstate', () => {
    const at = location.pathname + location.search;
    if (at !== shownAt) reloadMain();
  });

  // With a token, the page is fetched again with it (it may show more); until then it
  // is marked busy rather than run twice.
  if (token()) {
    showTokenState();
    reloadMain();
  } else {
    initMain();
  }
})();
