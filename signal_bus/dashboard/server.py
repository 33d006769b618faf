"""The web side of ``signal-dashboard``: pages, JSON API, server-sent events, ``/metrics``.

aiohttp serves; every history read runs in a worker thread (each with its own SQLite
connection), so a slow query never stalls the event loop or the live stream.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..history import History
from . import pages
from .metrics import HistoryCollector, render
from .queue_view import QueueView
from .watch import BusWatch

#: How often the live stream looks for new events, and sends the overview.
STREAM_INTERVAL = 1.0
OPEN_PATHS = frozenset({'/healthz', '/login'})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=repr), status=status,
                        content_type='application/json')


class Dashboard:
    """What the handlers share: the history, the bus watch, the queue view and the token."""

    def __init__(self, history: History, watch: BusWatch, queue: QueueView | None,
                 token: str | None) -> None:
        self.history = history
        self.watch = watch
        self.queue = queue
        self.token = token
        self.collector = HistoryCollector(history, watch, self.queue_counts)
        self.stopping = asyncio.Event()

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))

    def queue_counts(self) -> dict[str, Any] | None:
        """The queue's counts with ``--storage`` (None without, or when unreachable)."""
        if self.queue is None:
            return None
        try:
            return self.queue.counts()
        except Exception as exc:
            return {'pending': 0, 'scheduled': 0, 'in_flight': 0, 'error': str(exc)}

    def overview(self) -> dict[str, Any]:
        """The overview map: history, consumers, broker and queue."""
        data = self.history.overview()
        data.update(consumers=self.watch.consumers(), broker=self.watch.broker_state(),
                    broker_stats=self.watch.broker_stats(), queue=self.queue_counts())
        return data

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries the token (header or cookie)."""
        if self.token is None:
            return True
        header = request.headers.get('Authorization', '')
        given = header[7:] if header.startswith('Bearer ') else \
            request.cookies.get('token', '')
        return hmac.compare_digest(given.encode(), self.token.encode())


@web.middleware
async def _guard(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    dash: Dashboard = request.app['dashboard']
    if request.path in OPEN_PATHS or dash.authorized(request):
        return await handler(request)
    if request.path.startswith('/api') or request.path == '/metrics':
        return _json({'error': 'a token is needed: Authorization: Bearer <token>'}, 401)
    return web.Response(text=pages.login_page(), status=401, content_type='text/html')


async def healthz(request: web.Request) -> web.Response:
    """Always 200: whether the broker is heard and the last ``seq`` stored."""
    dash: Dashboard = request.app['dashboard']
    _, seq = await dash.run(dash.history.position)
    return _json({'ok': True, 'broker': dash.watch.broker_state(), 'last_seq': seq})


async def api_overview(request: web.Request) -> web.Response:
    """The overview as JSON."""
    dash: Dashboard = request.app['dashboard']
    return _json(await dash.run(dash.overview))


async def api_events(request: web.Request) -> web.Response:
    """Search: ``/api/events?signal=&task=&q=&after=&limit=``."""
    dash: Dashboard = request.app['dashboard']
    return _json(await dash.run(dash.history.search_events, **pages.search_args(request.query)))


async def api_task(request: web.Request) -> web.Response:
    """One task's timeline (404 when unknown)."""
    dash: Dashboard = request.app['dashboard']
    timeline = await dash.run(dash.history.timeline, request.match_info['task_id'])
    if timeline is None:
        return _json({'error': 'unknown task'}, 404)
    return _json(timeline)


async def api_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``events`` (new events, oldest first) and ``overview``."""
    dash: Dashboard = request.app['dashboard']
    response = web.StreamResponse(headers={'Content-Type': 'text/event-stream',
                                           'Cache-Control': 'no-cache'})
    await response.prepare(request)
    recent = await dash.run(dash.history.recent_events, 1)
    after = recent[0]['id'] if recent else 0
    try:
        while not dash.stopping.is_set():
            events = await dash.run(dash.history.search_events, after=after, limit=500)
            if events:
                after = events[-1]['id']
                await _send(response, 'events', events)
            await _send(response, 'overview', await dash.run(dash.overview))
            try:
                await asyncio.wait_for(dash.stopping.wait(), STREAM_INTERVAL)
            except asyncio.TimeoutError:
                pass
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def _send(response: web.StreamResponse, kind: str, data: Any) -> None:
    payload = json.dumps(data, default=repr)
    await response.write(('event: %s\ndata: %s\n\n' % (kind, payload)).encode())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    dash: Dashboard = request.app['dashboard']
    body = await dash.run(render, dash.collector)
    return web.Response(body=body, headers={'Content-Type': 'text/plain; version=0.0.4; '
                                                            'charset=utf-8'})


async def action(request: web.Request) -> web.Response:
    """``POST /api/actions/revoke|restore`` with ``{"id": …}`` or ``{"task": …}``."""
    dash: Dashboard = request.app['dashboard']
    queue = dash.queue
    assert queue is not None  # build_app adds this route only with a queue
    origin = request.headers.get('Origin')
    if request.headers.get('Sec-Fetch-Site') in ('cross-site', 'same-site') or (
            origin is not None and origin.split('://', 1)[-1] != request.host):
        return _json({'error': 'cross-origin requests are refused'}, 403)
    try:
        body = await request.json()
        result = await dash.run(queue.act, request.match_info['action'], body)
    except (ValueError, json.JSONDecodeError) as exc:
        return _json({'error': str(exc)}, 400)
    return _json(result)


def build_app(dash: Dashboard) -> web.Application:
    """The aiohttp application; actions exist only with a queue and a token."""
    app = web.Application(middlewares=[_guard])
    app['dashboard'] = dash
    app.router.add_get('/healthz', healthz)
    app.router.add_get('/metrics', metrics)
    app.router.add_get('/api/overview', api_overview)
    app.router.add_get('/api/events', api_events)
    app.router.add_get('/api/tasks/{task_id}', api_task)
    app.router.add_get('/api/stream', api_stream)
    if dash.queue is not None and dash.token is not None:
        app.router.add_post('/api/actions/{action:revoke|restore}', action)
    pages.add_routes(app)
    return app
