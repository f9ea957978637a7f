"""Guard every Python subprocess of a run under ``-p loopback_guard``.

With ``PYTHONPATH=tools``, Python imports this module at start-up. When the
environment names a guarded run's report directory (``LOOPBACK_GUARD_DIR``, set by
the plugin in the run's first process and inherited by its subprocesses), the
process installs the same audit hook as the plugin and writes its records there;
otherwise it does nothing.
"""

import os

if os.environ.get("LOOPBACK_GUARD_DIR"):
    import loopback_audit

    loopback_audit.install()
