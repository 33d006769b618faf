"""The pages in a real headless Chromium, against a real consumer and broker.

Chromium and chromedriver are Debian's (``scripts/setup.sh`` installs them); when they are
missing these tests fail and say so, rather than skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from scripts.support.polling import wait_until
from tests.dashboard.dash_helpers import DashboardProcess


APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', '--disable-sync',
         '--window-size=1280,1000')


@pytest.fixture
def browser():
    """A headless Chromium driven through chromedriver, with a fresh profile."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.fail('%s missing: run scripts/setup.sh (it installs Debian\'s chromium and '
                    'chromium-driver)' % ', '.join(missing))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix='chromium-test-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + ('--user-data-dir=' + profile,):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def consumer(tmp_path, start_broker):
    """A real ``queue-consumer`` of ``pages_app`` publishing to a real broker; yields
    ``(broker, storage URL)``."""
    broker = start_broker()
    storage = 'sqlite:///' + str(tmp_path / 'queue.db')
    env = dict(os.environ, QUEUE_STORAGE=storage,
               PYTHONPATH=os.pathsep.join([APPS, REPO, os.environ.get('PYTHONPATH', '')]))
    log = open(tmp_path / 'consumer.log', 'wb')
    proc = subprocess.Popen([sys.executable, '-m', 'queue_core.cli', 'pages_app.q', '-k',
                             'thread', '-d', '0.05', '--bus', broker.endpoints.ingest],
                            cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    yield broker, storage
    proc.terminate()
    proc.wait(30)
    log.close()


def _text(driver, css):
    """The visible text of what matches ``css``, read in one step in the page (the live
    overview replaces its tables every second, so elements found earlier may be gone)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => e.innerText).join(' ')", css)


def _enqueue(broker, storage, monkeypatch):
    monkeypatch.syspath_prepend(APPS)
    monkeypatch.setenv('QUEUE_STORAGE', storage)
    monkeypatch.delitem(sys.modules, 'pages_app', raising=False)
    import pages_app
    pages_app.q.attach_bus(broker.endpoints.ingest)
    return pages_app.add(1, 2), pages_app.broken()


def test_sign_in_then_the_overview_updates_live_and_links_to_timeline_and_search(
        tmp_path, consumer, browser, monkeypatch):
    from selenium.webdriver.common.by import By
    broker, storage = consumer
    (tmp_path / 'token').write_text('browser-token')
    dash = DashboardProcess(tmp_path, broker, '--storage', storage, '--queue', 'pages',
                            '--token-file', str(tmp_path / 'token')).start()
    try:
        browser.get(dash.url + '/')
        browser.find_element(By.NAME, 'token').send_keys('browser-token\n')
        wait_until(lambda: 'broker connected' in _text(browser, '#broker'), timeout=20,
                   message='the overview to show the broker connected')
        wait_until(lambda: 'pages' in _text(browser, '#consumers'), timeout=20,
                   message="the consumer's _consumer report in the consumers table")
        ok, bad = _enqueue(broker, storage, monkeypatch)
        wait_until(lambda: 'this task always fails' in _text(browser, '#failures'),
                   timeout=30, message='the failure to appear without a reload')
        wait_until(lambda: 'complete' in _text(browser, '#cards'), timeout=30,
                   message='the complete count to appear')
        assert browser.execute_script(
            "return document.querySelectorAll('#throughput rect.bar').length") > 0
        browser.get(browser.execute_script(
            "return document.querySelector('#failures a').href"))
        wait_until(lambda: bad.id in browser.current_url, message='the timeline page')
        for signal in ('enqueued', 'executing', 'error'):
            assert signal in _text(browser, '#timeline')
        assert 'RuntimeError' in browser.page_source
        browser.get(dash.url + '/events?signal=complete')
        assert ok.id[:8] in _text(browser, 'table') and bad.id[:8] not in _text(browser, 'table')
    finally:
        dash.kill()
