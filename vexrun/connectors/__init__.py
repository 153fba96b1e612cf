"""Sources and sinks: one package per store or file kind, behind the protocol of :mod:`.base`. Each package
registers itself with a ``plugin`` module (its specs and capabilities, no SDK) that
:mod:`vexrun.builtins` finds on its own; see CONTRIBUTING.md."""
