"""Fake rclpy (tests only): init/ok/shutdown/try_shutdown/spin with rclpy's signatures.

``init(args=...)`` parses ``--ros-args -p name:=value`` into global parameter overrides, as rcl
does.  ``spin(node)`` runs ``rclpy.spin_hook(node)`` when a test set one, else simulates Ctrl-C
(raises KeyboardInterrupt) right away.
"""
import yaml

_initialized = False
global_overrides = {}
spin_hook = None
shutdown_calls = 0


def init(*, args=None, context=None, domain_id=None, signal_handler_options=None):
    global _initialized
    if _initialized:
        raise RuntimeError('Failed to init: rcl_init called while already initialized')
    global_overrides.clear()
    args = list(args or [])
    if '--ros-args' in args:
        ros_args = args[args.index('--ros-args') + 1:]
        for i, a in enumerate(ros_args):
            if a in ('-p', '--param') and i + 1 < len(ros_args):
                name, _, value = ros_args[i + 1].partition(':=')
                global_overrides[name] = yaml.safe_load(value) if value != '' else ''
    _initialized = True


def ok(*, context=None):
    return _initialized


def shutdown(*, context=None, uninstall_handlers=None):
    global _initialized, shutdown_calls
    if not _initialized:
        raise RuntimeError('failed to shutdown: rcl_shutdown already called on the given context')
    _initialized = False
    shutdown_calls += 1


def try_shutdown(*, context=None, uninstall_handlers=None):
    if _initialized:
        shutdown(context=context, uninstall_handlers=uninstall_handlers)


def spin(node, executor=None):
    if not _initialized:
        from rclpy.exceptions import NotInitializedException
        raise NotInitializedException()
    if spin_hook is not None:
        spin_hook(node)
    else:
        raise KeyboardInterrupt


def _reset():
    """Tests: forget everything (between tests)."""
    global _initialized, spin_hook, shutdown_calls
    _initialized = False
    spin_hook = None
    shutdown_calls = 0
    global_overrides.clear()
