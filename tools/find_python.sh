# Sourced by tools/dist_*.sh and tools/slurm_*.sh: the interpreter to run.
# $PYTHON if set; else the project's environment (.venv, which `make venv`
# creates) when it exists; else `python` from PATH.
if [ -z "${PYTHON:-}" ]; then
    _MMDAS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [ -x "$_MMDAS_ROOT/.venv/bin/python" ]; then
        PYTHON="$_MMDAS_ROOT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi
