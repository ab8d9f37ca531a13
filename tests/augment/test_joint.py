"""Joint segmentation transforms: image and mask move together; the mask keeps its classes and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from visionflow.augment import joint
from visionflow.augment.pipeline import augment_dataset, build_joint_augmentation, joint_op
from visionflow.augment.spec import OPS

SIZE = 32
SEEDS = [tf.constant([s, 99], tf.int64) for s in range(5)]

SPATIAL = {
    "flip": {"mode": "horizontal_and_vertical"},
    "rot90": {},
    "rotate_constant": {"factor": 0.25, "fill_mode": "constant", "fill_value": 1.0},
    "rotate_reflect": {"factor": 0.25, "fill_mode": "reflect"},
    "zoom_constant": {"factor": 0.4, "fill_mode": "constant", "fill_value": 1.0},
    "zoom_wrap": {"factor": 0.4, "fill_mode": "wrap", "interpolation": "nearest"},
    "translate_constant": {"height_factor": 0.3, "width_factor": 0.3, "fill_mode": "constant", "fill_value": 1.0},
    "translate_reflect": {"height_factor": 0.3, "width_factor": 0.3},
    "crop": {"fraction": 0.6},
    "central_crop": {"fraction": 0.5},
}


def test_every_spatial_segmentation_op_has_a_joint_transform_and_a_case():
    spatial = {name for name, op in OPS.items() if "segmentation" in op.kinds and op.spatial}
    assert spatial == set(joint.SPATIAL) == {_op(case)["op"] for case in SPATIAL}


def _op(case: str) -> dict:
    return {"op": case.split("_")[0] if case.split("_")[0] in joint.SPATIAL else case, **SPATIAL[case]}


def _pair() -> tuple[tf.Tensor, tf.Tensor]:
    """A blocky trimap (8x8 blocks of classes 0, 1, 2) and an image whose channel 0 is mask / 2."""
    blocks = np.array([[0, 1, 2, 1], [1, 0, 0, 2], [2, 2, 1, 0], [1, 0, 2, 1]], np.uint8)
    mask = np.kron(blocks, np.ones((8, 8), np.uint8))[..., None]  # (32, 32, 1)
    ramp = np.linspace(0.0, 0.9, SIZE, dtype=np.float32)
    image = np.stack([mask[..., 0] / 2.0, np.tile(ramp, (SIZE, 1)), np.full((SIZE, SIZE), 0.25)], axis=-1)
    return tf.constant(image, tf.float32), tf.constant(mask)


def _misaligned(image: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(pixels where mask != round(2 * image[..., 0]), pixels checked). Only pixels whose 5x5
    neighbourhood lies inside the image and holds one class are checked: at class edges and at the image
    frame, bilinear (image) and nearest (mask) legitimately differ."""
    m = np.pad(mask[..., 0].astype(np.float32), 2, constant_values=-1.0)[None, ..., None]  # (1, H+4, W+4, 1)
    high = tf.nn.max_pool2d(m, 5, 1, "VALID")
    low = -tf.nn.max_pool2d(-m, 5, 1, "VALID")
    interior = (high == low).numpy()[0, ..., 0]  # (H, W)
    bad = interior & (np.rint(image[..., 0] * 2.0) != mask[..., 0])
    return int(bad.sum()), int(interior.sum())


@pytest.mark.parametrize("case", sorted(SPATIAL))
def test_joint_ops_keep_image_and_mask_aligned(case):
    fn = joint_op(_op(case))
    image, mask = _pair()
    for seed in SEEDS:
        out_image, out_mask = (t.numpy() for t in fn(image, mask, seed))
        assert out_mask.dtype == np.uint8 and out_mask.shape == (SIZE, SIZE, 1)
        assert out_image.shape == (SIZE, SIZE, 3)
        assert set(np.unique(out_mask)) <= {0, 1, 2}
        bad, checked = _misaligned(out_image, out_mask)
        assert bad == 0, f"{case}: {bad} of {checked} interior pixels disagree (seed {seed.numpy()})"
        assert checked > 0.08 * SIZE * SIZE, f"{case}: too few interior pixels ({checked}) for the check to mean much"
        if SPATIAL[case].get("fill_mode") == "constant":
            # Pixels brought in from outside: the image holds fill_value everywhere, the mask the border class.
            filled = np.all(out_image == 1.0, axis=-1)
            assert np.all(out_mask[filled] == joint.BORDER_CLASS)


@pytest.mark.parametrize("case", ["rotate_constant", "translate_reflect", "crop"])
def test_the_alignment_check_catches_a_mask_moved_with_other_parameters(case):
    fn = joint_op(_op(case))
    image, mask = _pair()
    out_image, _ = fn(image, mask, SEEDS[0])
    _, other_mask = fn(image, mask, SEEDS[1])
    bad, _ = _misaligned(out_image.numpy(), other_mask.numpy())
    assert bad > 20


def test_constant_fill_brings_in_the_border_class():
    image, mask = _pair()
    fn = joint_op({"op": "zoom", "factor": 0.5, "fill_mode": "constant", "fill_value": 1.0})
    filled = [int(np.sum(fn(image, mask, s)[1].numpy() == joint.BORDER_CLASS)) for s in SEEDS]
    assert max(filled) > int(np.sum(mask.numpy() == joint.BORDER_CLASS)), "zooming out never filled the border"


@pytest.mark.parametrize("case", sorted(SPATIAL))
def test_joint_ops_are_the_same_eagerly_and_in_tf_data(case):
    fn = joint_op(_op(case))
    image, mask = _pair()
    eager = fn(image, mask, SEEDS[0])
    graph = tf.data.Dataset.from_tensors((image, mask, SEEDS[0])).map(fn).get_single_element()
    for e, g in zip(eager, graph):
        np.testing.assert_array_equal(e.numpy(), g.numpy())


@pytest.mark.parametrize("op", [{"op": "brightness", "max_delta": 0.3}, {"op": "hue", "max_delta": 0.2},
                                {"op": "gaussian_blur", "max_sigma": 1.5}, {"op": "jpeg_quality",
                                "min_quality": 10, "max_quality": 50}, {"op": "invert", "probability": 1.0}])
def test_pixel_ops_change_the_image_only(op):
    image, mask = _pair()
    out_image, out_mask = joint_op(op)(image, mask, SEEDS[0])
    np.testing.assert_array_equal(out_mask.numpy(), mask.numpy())
    assert not np.array_equal(out_image.numpy(), image.numpy())


def test_joint_augmentation_on_a_batch_and_its_errors():
    ops = [{"op": "flip", "mode": "horizontal"}, {"op": "rotate", "factor": 0.1, "fill_mode": "constant",
                                                  "fill_value": 1.0}, {"op": "contrast", "lower": 0.8, "upper": 1.2}]
    fn = build_joint_augmentation(ops, seed=1)
    image, mask = _pair()
    images, masks = tf.stack([image] * 3), tf.stack([mask] * 3)  # (3, H, W, C)
    out_images, out_masks = fn(images, masks, SEEDS[0])
    assert out_images.shape == (3, SIZE, SIZE, 3) and out_masks.dtype == tf.uint8
    assert not np.array_equal(out_masks[0], out_masks[1]), "examples of a batch share their augmentation"
    with pytest.raises(ValueError, match=r"the mask must be \(H, W, 1\)"):
        fn(image, mask[..., 0], SEEDS[0])


def _real_pets(root, names: list[str], size: int) -> tf.data.Dataset:
    """Real photos and trimaps; channel 0 of each photo replaced by mask / 2 to make alignment visible."""
    images, masks = [], []
    for name in names:
        photo = Image.open(root / "images" / f"{name}.jpg").convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        trimap = Image.open(root / "annotations" / "trimaps" / f"{name}.png").resize((size, size), Image.Resampling.NEAREST)
        mask = np.asarray(trimap, np.uint8)[..., None] - 1  # (H, W, 1): 0 pet, 1 background, 2 border
        image = np.asarray(photo, np.float32) / 255.0
        image[..., 0] = mask[..., 0] / 2.0
        images.append(image)
        masks.append(mask)
    return tf.data.Dataset.from_tensor_slices((np.stack(images), np.stack(masks)))


def test_real_pet_trimaps_stay_aligned_through_the_shipped_and_spatial_ops(pets_sample, small_params):
    ops = [*small_params.augment.segmentation,
           {"op": "rotate", "factor": 0.1, "fill_mode": "constant", "fill_value": 1.0},
           {"op": "zoom", "factor": 0.2}, {"op": "translate", "height_factor": 0.1, "width_factor": 0.1},
           {"op": "crop", "fraction": 0.8}]
    ds = _real_pets(pets_sample, ["Abyssinian_101", "american_bulldog_101", "Bengal_101"], size=64)
    moved = 0
    for (image, mask), (original_image, _) in zip(augment_dataset(ds, ops, seed=small_params.seed,
                                                                  kind="segmentation"), ds):
        image, mask = image.numpy(), mask.numpy()
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2} and 0 in np.unique(mask)
        bad, checked = _misaligned(image, mask)
        assert bad == 0 and checked > 0.3 * 64 * 64, (bad, checked)
        moved += not np.allclose(image, original_image.numpy())
    assert moved == 3
