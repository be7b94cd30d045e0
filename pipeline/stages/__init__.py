"""The local stages, one module each; ``base`` is the one way to define a stage, ``corpusslim.registry`` lists
them."""
