# Shared set-up for scripts/run and scripts/test (sourced, not run). Idempotent:
# creates or reuses .venv, installs the project when pyproject.toml changed, and on Linux
# installs Debian's OpenBLAS when it can (MLX's bundled BLAS is ~30x slower) and bubblewrap
# (the code verifier's sandbox).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OPENBLAS=/usr/lib/x86_64-linux-gnu/libopenblas.so.0
[ "$(uname -m)" = aarch64 ] && OPENBLAS=/usr/lib/aarch64-linux-gnu/libopenblas.so.0

apt_install() {
    # apt_install PACKAGE WITHOUT: install a Debian package as root or with passwordless sudo;
    # otherwise (or if that fails) one note saying what is lost (WITHOUT) and how to fix it.
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
            echo "note: $1 is not installed and this user cannot install it (not root, no passwordless sudo)." >&2
            echo "      Without it $2. To fix: sudo apt-get install $1" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null; then
        echo "note: no apt-get here; install $1 with your package manager (without it $2)." >&2
        return 0
    fi
    echo "installing Debian's $1 ..." >&2
    { $sudo apt-get install -y -qq "$1" >/dev/null 2>&1 ||
      { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "$1" >/dev/null 2>&1; }; } ||
        echo "note: could not install $1; without it $2." >&2
}

ensure_openblas() {
    [ "$(uname -s)" = Linux ] || return 0
    command -v tmux >/dev/null || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y -qq tmux >/dev/null 2>&1; } || true  # the TUI's tmux test
    [ -e "$OPENBLAS" ] && return 0
    apt_install libopenblas0-pthread "MLX uses its ~30x slower reference BLAS on CPU"
}

ensure_bubblewrap() {
    # The code verifier's sandbox on Linux (docs/verifiers.md).
    [ "$(uname -s)" = Linux ] || return 0
    command -v bwrap >/dev/null && return 0
    apt_install bubblewrap "the code verifier refuses to score code"
}

ensure_venv() {
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "creating .venv ..." >&2
        "$python" -m venv .venv
    fi
    local stamp
    stamp="$(sha256sum pyproject.toml | cut -d" " -f1)"
    if [ "$(cat .venv/.workbench-installed 2>/dev/null)" != "$stamp" ]; then
        echo "installing reasoning-workbench into .venv (first run takes a minute) ..." >&2
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
        if ! .venv/bin/python -m pip install -e ".[dev]" > .venv/install.log 2>&1 ||
           ! .venv/bin/python -c "import workbench, mlx.core, mlx_lm, textual"; then
            tail -n 20 .venv/install.log >&2
            echo "error: installing the project into .venv failed (full log: .venv/install.log)" >&2
            exit 1
        fi
        echo "$stamp" > .venv/.workbench-installed
    fi
}

use_openblas() {
    # For processes started by the scripts themselves (pytest); `workbench` does this on its own.
    if [ "$(uname -s)" = Linux ] && [ -e "$OPENBLAS" ] && [ -z "${WORKBENCH_NO_OPENBLAS:-}" ]; then
        export LD_PRELOAD="$OPENBLAS${LD_PRELOAD:+ $LD_PRELOAD}"
    fi
}
