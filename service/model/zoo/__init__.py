"""Official DSTformer weights by name: ``motionlift pull NAME`` downloads a published checkpoint (the Hugging Face
Hub through ``huggingface_hub``, or a plain model-zoo URL), checks its SHA-256, exports it and records it in the
cache's registry, so that ``motionlift serve --model NAME`` finds it.

``catalogue`` holds the names and what is known about each file; ``fetch`` and ``hub`` download; ``checksum`` says
which SHA-256 a file must have; ``registry`` keeps the cache's layout and the names pulled (it imports no torch:
``serve`` resolves names through it); ``pull`` puts them together and ``command`` is the CLI.
"""
