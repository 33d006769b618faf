"""The dashboard's pages: overview (live), a task's timeline, search, and the login form.

Plain HTML with a little inline script and style; charts are SVG drawn in the page. No
asset comes from outside the process.
"""
from __future__ import annotations

import hmac
import time
from html import escape
from typing import Any

from aiohttp import web

from queue_core.signals import ALL_SIGNALS

from .page_assets import OVERVIEW_SCRIPT, STYLE


def search_args(query: Any) -> dict[str, Any]:
    """``signal``, ``task``, ``q``, ``after``, ``limit`` from a query string (checked)."""
    signal = query.get('signal') or None
    if signal is not None and signal not in ALL_SIGNALS:
        raise web.HTTPBadRequest(text='unknown signal %r' % signal)
    try:
        after = int(query['after']) if query.get('after') else None
        limit = int(query.get('limit') or 100)
    except ValueError:
        raise web.HTTPBadRequest(text='after and limit must be integers') from None
    return {'signal': signal, 'task': query.get('task') or None, 'q': query.get('q') or None,
            'after': after, 'limit': limit}


def _layout(title: str, body: str, script: str = '') -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>%s · queue-core</title><style>%s</style></head><body>'
            '<nav><b>queue-core</b> <a href="/">Overview</a> <a href="/events">Events</a>'
            '</nav><main>%s</main>%s</body></html>'
            % (escape(title), STYLE, body, '<script>%s</script>' % script if script else ''))


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return '-'
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts)) + '.%03d' % (ts % 1 * 1000)


def login_page(message: str = '') -> str:
    """The form that sets the ``token`` cookie."""
    return _layout('Sign in', '<h1>Sign in</h1><p>%s</p><form method="post" action="/login">'
                   '<input type="password" name="token" placeholder="token" autofocus> '
                   '<button>Sign in</button></form>' % escape(message))


def overview_page() -> str:
    """The live overview; the script fills it from ``/api/stream``."""
    body = ('<h1>Overview <span id="broker" class="pill">…</span></h1>'
            '<section class="cards" id="cards"></section>'
            '<h2>Throughput per minute</h2><div id="chart"></div>'
            '<div class="cols"><section><h2>Consumers</h2><table id="consumers"></table>'
            '<h2>In flight <span id="inflight-count"></span></h2><table id="inflight"></table>'
            '</section><section><h2>Recent failures</h2><table id="failures"></table>'
            '<h2>Losses and broker restarts</h2><table id="incidents"></table>'
            '<h2>Broker</h2><table id="broker-stats"></table></section></div>'
            '<h2>Recent events</h2><table id="recent"></table>')
    return _layout('Overview', body, OVERVIEW_SCRIPT)


def _event_rows(events: list[dict[str, Any]], with_task: bool = True) -> str:
    rows = []
    for event in events:
        task = ('<td><a href="/tasks/%s">%s</a> %s</td>' % (
            escape(str(event['task_id'])), escape(str(event['task_name'])),
            escape(str(event['task_id'])[:8]))) if with_task else ''
        rows.append('<tr class="sig-%s"><td>%s</td><td>%s</td>%s<td>%s</td><td>%s</td>'
                    '<td>%s</td></tr>' % (
                        escape(str(event['signal'])), _when(event['ts']),
                        escape(str(event['signal'])), task, escape(str(event['source'])),
                        escape(str(event['retries'])), escape(event.get('error') or '')))
    head = '<tr><th>time</th><th>signal</th>%s<th>source</th><th>retries</th><th>error</th>' \
           '</tr>' % ('<th>task</th>' if with_task else '')
    return '<table>%s%s</table>' % (head, ''.join(rows))


def task_page(timeline: dict[str, Any]) -> str:
    """Every event of one task, each life marked, with errors and tracebacks."""
    parts = ['<h1>Task <code>%s</code></h1>' % escape(timeline['id'])]
    task = timeline.get('task') or {}
    parts.append('<p>%s · queue %s · %d li%s</p>' % (
        escape(str(task.get('name') or '')), escape(str(task.get('queue') or '-')),
        timeline['lives'], 'fe' if timeline['lives'] == 1 else 'ves'))
    rows, life = [], 0
    for event in timeline['events']:
        if event['life'] != life:
            life = event['life']
            rows.append('<tr class="life"><th colspan="6">life %d</th></tr>' % life)
        exc = event.get('exc') or {}
        trace = ('<details><summary>traceback</summary><pre>%s</pre></details>'
                 % escape(str(exc.get('traceback')))) if exc.get('traceback') else ''
        rows.append('<tr class="sig-%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
                    '<td>%s</td><td>%s%s</td></tr>' % (
                        escape(event['signal']), _when(event['ts']), escape(event['signal']),
                        escape(str(event['source'])), escape(str(event['retries'])),
                        escape('%s@%s' % (event.get('pid'), event.get('host'))),
                        escape(event.get('error') or ''), trace))
    parts.append('<table id="timeline"><tr><th>time</th><th>signal</th><th>source</th>'
                 '<th>retries</th><th>process</th><th>error</th></tr>%s</table>'
                 % ''.join(rows))
    first = timeline['events'][0] if timeline['events'] else {}
    parts.append('<h2>Arguments (as the bus carries them)</h2><pre>%s %s</pre>' % (
        escape(repr(first.get('args'))), escape(repr(first.get('kwargs')))))
    return _layout('Task %s' % timeline['id'], ''.join(parts))


def events_page(events: list[dict[str, Any]], query: Any) -> str:
    """The search form and its results, newest first."""
    options = ''.join('<option%s>%s</option>' % (
        ' selected' if query.get('signal') == s else '', s) for s in ('',) + ALL_SIGNALS)
    form = ('<form method="get" action="/events"><select name="signal">%s</select> '
            '<input name="task" placeholder="task glob" value="%s"> '
            '<input name="q" placeholder="id, name or error text" value="%s"> '
            '<button>Search</button></form>' % (
                options, escape(query.get('task', '')), escape(query.get('q', ''))))
    return _layout('Events', '<h1>Events</h1>%s<p>%d shown</p>%s' % (
        form, len(events), _event_rows(events)))


async def overview(request: web.Request) -> web.Response:
    """``/``."""
    return web.Response(text=overview_page(), content_type='text/html')


async def task(request: web.Request) -> web.Response:
    """``/tasks/<id>``."""
    dash = request.app['dashboard']
    timeline = await dash.run(dash.history.timeline, request.match_info['task_id'])
    if timeline is None:
        return web.Response(text=_layout('Unknown task', '<h1>Unknown task</h1><p>No event '
                                         'of this task is in the history.</p>'),
                            status=404, content_type='text/html')
    return web.Response(text=task_page(timeline), content_type='text/html')


async def events(request: web.Request) -> web.Response:
    """``/events?signal=&task=&q=``."""
    dash = request.app['dashboard']
    found = await dash.run(dash.history.search_events, **search_args(request.query))
    return web.Response(text=events_page(found, request.query), content_type='text/html')


async def login_form(request: web.Request) -> web.Response:
    """``GET /login``."""
    return web.Response(text=login_page(), content_type='text/html')


async def login(request: web.Request) -> web.Response:
    """``POST /login``: a right token sets the ``token`` cookie and goes to the overview."""
    dash = request.app['dashboard']
    given = str((await request.post()).get('token', ''))
    if dash.token is None or not hmac.compare_digest(given.encode(), dash.token.encode()):
        return web.Response(text=login_page('That token is not right.'), status=401,
                            content_type='text/html')
    response = web.HTTPSeeOther('/')
    response.set_cookie('token', given, httponly=True, samesite='Strict', path='/')
    return response


def add_routes(app: web.Application) -> None:
    """The page routes."""
    app.router.add_get('/', overview)
    app.router.add_get('/tasks/{task_id}', task)
    app.router.add_get('/events', events)
    app.router.add_get('/login', login_form)
    app.router.add_post('/login', login)
