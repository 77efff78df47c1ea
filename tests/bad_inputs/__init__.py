"""Bad inputs, faults and security: a corpus of broken and odd media made with ffmpeg, run through the stages.

``corpus.py`` builds the corpus (no binaries are checked in) and lists each
case with the outcome the stages must give; docs/bad_inputs.md is the
user-facing table of the same cases.
"""
