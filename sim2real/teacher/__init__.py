"""Privileged teachers: SB3 training (`train`), the `Expert` protocol and its implementations.

`expert.Expert` is the one interface collection and DAgger use; `policy.load_teacher` (a teacher
trained here), `sb3_zip.SB3ZipExpert` (any SB3 zip for the plain Gymnasium env) and
`expert.ScriptedPendulumExpert` implement it; `experts.load_expert` picks one from the config.
Importing this package stays light: SB3 and torch load only with the modules that need them.
"""
