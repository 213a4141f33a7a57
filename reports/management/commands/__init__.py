"""`manage.py` commands: `transparency_report` (print aggregates) and `verify_packet` (check a
packet offline). Each imports selectors, services or `reports.signing`, never views or tasks.
"""
