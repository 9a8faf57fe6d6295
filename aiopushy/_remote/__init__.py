"""The remote side of aiopushy: shipped over stdin by the bootstrap, stdlib-only.

Nothing here is imported by the controller at run time except to ship it. On the far side
it lives under the package name ``_aiopushy_remote`` (served from memory), so it never
clashes with an aiopushy installed there. It must run on Python 3.8.
"""
