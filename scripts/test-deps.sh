#!/bin/sh
# Installs what the tests need beyond cargo: kubernetes-validate (PyPI, the
# official OpenAPI schemas) and Chromium (Debian, renders the simulate SVGs).
set -eu
cd "$(dirname "$0")/.."
pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "test-deps: chromium is missing; install it (apt-get install chromium) or run as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
