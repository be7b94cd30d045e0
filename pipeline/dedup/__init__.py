"""Global exact + MinHash near-duplicate removal, in one package.

* ``config``: the settings; ``stage``: the map step (keys per document) and the apply step (the decision);
* ``tasks``: the reduce, gather and verify tasks the workers run; ``driver``: the linker the runner calls
  (``corpusslim.runtime.phases``): it schedules them, then the linking rounds (``schedule``, tasks in ``rounds``, logic
  in ``linking``: earliest-duplicate links over partitions of document keys); ``simulate``: linking on synthetic pairs.
"""
