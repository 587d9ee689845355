"""The Feast feature repository: definitions only, safe to import.

``entities``, ``sources``, ``views`` and ``services`` declare Feast objects and run
nothing at import. Infrastructure (registry, online/offline store) and the binding
of sources to Delta paths come from the one config at run time: see
``jobs/feature_store.py``. ``lookup.py`` is a consumer (listed in ``.feastignore``).
"""
