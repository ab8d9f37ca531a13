"""The class names and ids every part of visionflow shares: one home, no imports.

Oxford-IIIT Pet trimaps hold 1 pet, 2 background, 3 border ("unclassified"). The cache, the models, the
augmentation and the figures use them shifted down by one: indices into MASK_CLASSES.
"""

TRIMAP_VALUES = (1, 2, 3)
MASK_CLASSES = ("pet", "background", "border")
PET, BACKGROUND, BORDER = range(len(MASK_CLASSES))

FLOWER_CLASSES = ("dandelion", "daisy", "tulips", "sunflowers", "roses")  # tf_flowers' label order
