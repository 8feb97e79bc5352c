# Sourced by the scripts: finds uv, installing it from PyPI when missing; sets $UV.
ensure_uv() {
    UV="$(command -v uv || true)"
    for candidate in "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv"; do
        [ -n "$UV" ] && break
        [ -x "$candidate" ] && UV="$candidate"
    done
    if [ -z "$UV" ]; then
        echo "setup: installing uv from PyPI" >&2
        python3 -m pip install --quiet uv 2>/dev/null \
            || python3 -m pip install --quiet --user --break-system-packages uv
        UV="$(command -v uv || true)"
        [ -z "$UV" ] && [ -x "$HOME/.local/bin/uv" ] && UV="$HOME/.local/bin/uv"
        if [ -z "$UV" ]; then
            echo "setup: could not install uv (python3 -m pip install uv)" >&2
            exit 1
        fi
    fi
    export UV
}
