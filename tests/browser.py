"Headless Debian Chromium for the browser tests (never a downloaded browser)."
import os

CHROMIUM = os.environ.get('DIFFEDIT_CHROMIUM', '/usr/bin/chromium')
# as root, on a machine with no network: no sandbox, and none of Chromium's background connections
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
