"""Training of the small domain classifiers behind the ``*-cnn`` feature extractors (see ``geneval.features.domain``).

``python -m trainers.classifiers.train --dataset fashion-mnist --out runs/classifiers/fashion-mnist --resume``
then ``python -m trainers.classifiers.export --run runs/classifiers/fashion-mnist --name fashion-mnist-cnn``.
"""
