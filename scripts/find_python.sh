#!/bin/sh
# Prints the Python the Makefile builds its environments with: $1 (make's $(PYTHON)) if it is 3.9
# to 3.11, else the first of python3.11, python3.10, python3.9 on PATH. Without one it says why
# and how to get one, on stderr, and exits 1, before pip would fail at length building numpy.
requested="$1"

version_of() {  # "3.11.7", or nothing where $1 does not run
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

supported() {
    case "$1" in 3.9.*|3.10.*|3.11.*) return 0 ;; esac
    return 1
}

found=$(version_of "$requested")
if supported "$found"; then
    echo "$requested"
    exit 0
fi
for candidate in python3.11 python3.10 python3.9; do
    if command -v "$candidate" >/dev/null 2>&1 && supported "$(version_of "$candidate")"; then
        echo "note: $requested is ${found:+Python $found, }not 3.9 to 3.11; using $candidate" >&2
        echo "$candidate"
        exit 0
    fi
done

if [ -n "$found" ]; then
    what="$requested is Python $found ($(command -v "$requested"))"
else
    what="$requested does not run here"
fi
# printf, a builtin: nothing but the shell is needed from PATH.
printf '%s\n' >&2 \
  "neural-style needs Python 3.9 to 3.11: MXNet 1.9.1 works only with numpy below 1.24, which has" \
  "no wheels for Python 3.12 or newer. $what, and there is no" \
  "python3.11, python3.10 or python3.9 on PATH. Ways to get Python 3.11:" \
  '  uv:     uv python install 3.11           then  make PYTHON="$(uv python find 3.11)" demo' \
  '  pyenv:  pyenv install 3.11               then  make PYTHON="$(pyenv prefix 3.11)/bin/python3" demo' \
  "  conda:  conda env create -f environment.yml && conda activate neural-style   then  make demo" \
  "  the OS: apt install python3.11-venv (Debian 12; Ubuntu 24.04 from the deadsnakes PPA)," \
  "          brew install python@3.11, dnf install python3.11                     then  make demo" \
  "Any Python 3.9 to 3.11 works: make PYTHON=/path/to/python3.11 demo"
exit 1
