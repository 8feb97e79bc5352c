from cityos_kernel.migrations import run_env

run_env()
