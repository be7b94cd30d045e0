"""Global exact + MinHash near-duplicate removal, in one package.

* ``config``: the settings; ``stage``: the map step (keys per document) and the apply step (the decision);
* ``tasks``: the reduce, gather and verify tasks the workers run; ``driver``: the linker the runner calls
  (``corpusslim.phases``): it schedules them, then the linking rounds (``schedule``, tasks in ``rounds``, logic in
  ``linking``: earliest-duplicate links over partitions of document keys); ``simulate``: linking on synthetic pairs.
"""
# The stage registry first: ``config`` needs ``stages.base``, whose package imports this one's ``stage``, so a
# process whose first import is one of this package's modules (a worker unpickling a task) would meet ``config``
# half-initialised.
import corpusslim.stages  # noqa: F401
