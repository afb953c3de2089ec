#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root):
# Debian packages for the real clients, MTA and browser, then mailsink with its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# Keep package installs from starting daemons (Exim would grab port 25).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get update -q
apt-get install -y -q --no-install-recommends \
    swaks libnet-ssleay-perl libauthen-sasl-perl libdigest-hmac-perl \
    exim4-daemon-light openssl ca-certificates \
    chromium
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test]'
# The npm `mailhog` client that tests/mailhog drives unchanged (Node usually comes with the image).
command -v npm >/dev/null || apt-get install -y -q --no-install-recommends nodejs npm
(cd tests/mailhog/node && npm ci --no-audit --no-fund --loglevel=error)
