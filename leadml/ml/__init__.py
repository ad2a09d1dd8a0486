"""The ML core: plain Python over pandas, numpy and scikit-learn. Never imports Django.

Views, django-q2 tasks and management commands all call these functions; their tests
need no database.
"""
