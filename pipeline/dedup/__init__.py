"""Global exact + MinHash near-duplicate removal, in one package.

* ``config``: the settings; ``stage``: the map step (keys per document) and the apply step (the decision);
* ``tasks``: the reduce, gather and verify tasks the workers run; ``linking``: earliest-duplicate links;
* ``driver``: the linker that schedules those tasks from the runner (``corpusslim.phases``).
"""
