"""--unlabeled: the training data of a distillation config with images without labels."""
import copy
import logging
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.runner import Runner, set_random_seed

from mmkd_yolo.apis import prepare_train_cfg
from mmkd_yolo.apis.config import type_name
from mmkd_yolo.apis.unlabeled import _val_images, _weighs_images, apply_unlabeled
from mmkd_yolo.losses import YOLOv5OutputDistillLoss
from mmkd_yolo.registry import MODELS as MMKD_MODELS
from mmkd_yolo.errors import ConfigError

from ..conftest import KD_OUT_N2N, KD_OUT_S2N, STUDENT_N
from ..helpers.logs import logged
from ..test_datasets.test_yolo_data import make_yolo_tree


def black_images(folder, n, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f'black{i}.png'), np.zeros((size, size, 3), np.uint8))
    return str(folder)


def shapes_options(shapes_dir, batch=8):
    root = str(shapes_dir / 'data' / 'shapes') + '/'
    return {'train_dataloader.dataset.data_root': root,
            'val_dataloader.dataset.data_root': root,
            'val_evaluator.ann_file': root + 'annotations/val.json',
            'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
            'train_dataloader.batch_size': batch}


def test_plain_config_bad_ratio_and_other_data_paths_refused(tmp_path, shapes_dir):
    folder = black_images(tmp_path / 'u', 2)
    with pytest.raises(ConfigError, match='needs a distillation config'):
        prepare_train_cfg(STUDENT_N, unlabeled=[folder])
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match='not in \\(0, 1\\)'):
            prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], unlabeled_ratio=ratio)
    with pytest.raises(ConfigError, match='no unlabeled images are used'):
        prepare_train_cfg(KD_OUT_S2N, unlabeled_ratio=0.5)
    # a batch of 16 at 0.05 would hold no unlabeled image (mmdet's sampler would spin)
    with pytest.raises(ConfigError, match=r'a batch of 16 .* draws \[16, 0\] images'):
        prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], unlabeled_ratio=0.05)
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir))
    cfg.train_dataloader.collate_fn = dict(type='pseudo_collate')
    with pytest.raises(ConfigError, match="fast YOLOv5 data path.*'pseudo_collate'"):
        apply_unlabeled(cfg, [folder])


def test_unlabeled_images_distil_to_the_end(tmp_path):
    """--unlabeled switches the configs' distillation stop off, and says so; without it
    the stop stays."""
    folder = black_images(tmp_path / 'u', 2)

    def stop_hook(cfg):
        hooks = [h for h in cfg.custom_hooks if h['type'].endswith('StopDistillLastEpochsHook')]
        assert len(hooks) == 1
        return hooks[0]

    assert stop_hook(prepare_train_cfg(KD_OUT_S2N))['num_last_epochs'] == 5
    with logged('unlabeled_stop_test') as records:
        cfg = prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder])
    assert stop_hook(cfg)['num_last_epochs'] == 0
    assert any('distilling to the end' in r.getMessage() and 'num_last_epochs 5 -> 0' in
               r.getMessage() for r in records)
    # mmrazor's absolute stop is the user's: kept, with a warning
    plain = prepare_train_cfg(KD_OUT_S2N)
    plain.custom_hooks = [dict(type='mmrazor.StopDistillHook', stop_epoch=30)]
    with logged('unlabeled_stop_test') as records:
        apply_unlabeled(plain, [folder])
    assert plain.custom_hooks[0]['stop_epoch'] == 30
    assert any(r.levelname == 'WARNING' and 'StopDistillHook (stop_epoch=30)' in r.getMessage()
               for r in records)


@pytest.fixture(scope='module')
def mixed_loader(shapes_dir, tmp_path_factory):
    """A real training dataloader: 8 labeled shapes images + 6 black unlabeled ones,
    batches of 8 with the default ratio (4 + 4), mmyolo's Mosaic pipeline."""
    folder = black_images(tmp_path_factory.mktemp('unlabeled') / 'u', 6)
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir),
                            unlabeled=[folder])
    set_random_seed(0)
    return cfg, Runner.build_dataloader(cfg.train_dataloader, seed=0)


def test_batches_hold_both_kinds_never_mixed(mixed_loader):
    cfg, loader = mixed_loader
    assert len(loader) == 2  # 8 labeled images, 4 a batch: the epoch is the labeled set
    for batch in loader:
        mask = batch['data_samples']['unlabeled']
        assert mask.tolist() == [False] * 4 + [True] * 4
        boxed = set(batch['data_samples']['bboxes_labels'][:, 0].long().tolist())
        assert boxed and boxed <= {0, 1, 2, 3}  # no box on an unlabeled image
        for img, unlabeled in zip(batch['inputs'], mask):
            img = img.float()
            colourful = (img.max(0).values - img.min(0).values > 8).float().mean()
            if unlabeled:  # black images (and grey padding) only: Mosaic drew no
                assert colourful == 0  # labeled image into them
            else:  # shapes on clutter, no black quadrant from an unlabeled image
                assert colourful > 0.3
                assert (img.max(0).values < 4).float().mean() < 0.05


def test_preprocessor_keeps_the_mask(mixed_loader):
    cfg, loader = mixed_loader
    assert cfg.model.data_preprocessor.type == 'YOLOv5UnlabeledDataPreprocessor'
    preprocessor = MMENGINE_MODELS.build(copy.deepcopy(cfg.model.data_preprocessor))
    batch = next(iter(loader))
    out = preprocessor(copy.deepcopy(batch), True)
    assert out['data_samples']['unlabeled'].tolist() == [False] * 4 + [True] * 4
    assert torch.equal(out['data_samples']['bboxes_labels'],
                       batch['data_samples']['bboxes_labels'])


def test_data_yaml_unlabeled_entry(tmp_path, monkeypatch):
    """``unlabeled:`` in the data.yaml is used by distillation configs; a plain config
    trains on the labels and says the images are not used."""
    monkeypatch.setenv('MMKD_CACHE', str(tmp_path / 'cache'))
    data = make_yolo_tree(tmp_path, {f'a{i}': '0 0.5 0.5 0.5 0.5\n' for i in range(4)})
    black_images(tmp_path / 'frames', 3)
    with open(data, 'a') as f:
        f.write('unlabeled: [frames]\n')
    kd = prepare_train_cfg(KD_OUT_S2N, data=data)
    assert kd.train_dataloader.dataset.type == 'ConcatDataset'
    assert kd.train_dataloader.sampler.source_ratio == [0.5, 0.5]
    with logged('unlabeled_yaml_test') as records:
        plain = prepare_train_cfg(STUDENT_N, data=data)
    assert plain.train_dataloader.dataset.type != 'ConcatDataset'
    assert any('unlabeled images are not used' in r.getMessage() for r in records)


def test_missing_labeled_annotations_named_with_unlabeled_images(tmp_path, shapes_dir):
    """With --unlabeled the training set is a ConcatDataset: the labeled set's annotation
    file is still checked before the run."""
    from mmkd_yolo.apis import check_data_files
    from mmkd_yolo.errors import DataError
    folder = black_images(tmp_path / 'u', 2)
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir),
                            unlabeled=[folder])
    check_data_files(cfg, ('train_dataloader', 'val_dataloader'))
    cfg.train_dataloader.dataset.datasets[0].ann_file = 'annotations/missing.json'
    with pytest.raises(DataError, match='missing.json'):
        check_data_files(cfg, ('train_dataloader', 'val_dataloader'))


@pytest.mark.parametrize('batch', [3, 7, 16])
def test_a_ratio_too_small_names_the_smallest_that_works(tmp_path, shapes_dir, batch):
    """The range in the message is one that works (for a batch of 3 it said 0.333, which
    gives int(3 * 0.333) = 0 unlabeled images again)."""
    folder = black_images(tmp_path / 'u', 2)
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir, batch=batch))
    with pytest.raises(ConfigError, match=rf'a batch of {batch} split by source_ratio .* '
                       rf'draws \[{batch}, 0\] images') as e:
        apply_unlabeled(copy.deepcopy(cfg), [folder], 0.9 / batch)
    lowest = float(re.search(r'--unlabeled-ratio of at least ([\d.]+)', str(e.value))[1])
    assert lowest == pytest.approx(1 / batch, abs=1e-3)
    fitted = copy.deepcopy(cfg)
    apply_unlabeled(fitted, [folder], lowest)
    assert fitted.train_dataloader.sampler.source_ratio == [1 - lowest, lowest]
    with pytest.raises(ConfigError, match='draws'):
        apply_unlabeled(copy.deepcopy(cfg), [folder], lowest - 0.001)


def test_a_concatenated_labeled_set_lends_its_pipeline(tmp_path, shapes_dir):
    """A config whose training set is a ConcatDataset: the unlabeled images get the
    labeled set's pipeline (was: none, so the first batch failed) and its classes."""
    folder = black_images(tmp_path / 'u', 4)
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir))
    labeled = copy.deepcopy(cfg.train_dataloader.dataset)
    cfg.train_dataloader.dataset = dict(type='ConcatDataset',
                                        datasets=[labeled, copy.deepcopy(labeled)])
    apply_unlabeled(cfg, [folder])
    unlabeled = cfg.train_dataloader.dataset.datasets[1]
    assert len(labeled.pipeline) > 3 and unlabeled.pipeline == labeled.pipeline
    assert unlabeled.metainfo == labeled.metainfo
    set_random_seed(0)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    assert len(loader) == 4  # 2 x 8 labeled images, 4 a batch
    batch = next(iter(loader))
    assert batch['data_samples']['unlabeled'].tolist() == [False] * 4 + [True] * 4
    assert batch['inputs'].shape[0] == 8


def test_val_overlap_warning_sees_a_concatenated_val_set(tmp_path, shapes_dir):
    """Unlabeled copies of val images are found when the val set is a ConcatDataset too
    (was: no val images seen, no warning)."""
    cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=shapes_options(shapes_dir))
    val_images = _val_images(cfg)
    assert len(val_images) == 4
    folder = tmp_path / 'u'
    black_images(folder, 3)
    for k, path in enumerate(val_images[:2]):
        shutil.copy(path, folder / f'frame{k}{osp.splitext(path)[1]}')
    val = copy.deepcopy(cfg.val_dataloader.dataset)
    cfg.val_dataloader.dataset = dict(type='ConcatDataset', datasets=[val])
    with logged('unlabeled_overlap_test') as records:
        apply_unlabeled(cfg, [str(folder)])
    assert any(r.levelno == logging.WARNING and
               '2 of the 5 unlabeled images are also val images' in r.getMessage()
               for r in records), [r.getMessage() for r in records]


# --- the student's view and the unlabeled images' weight (--unlabeled-aug / -weight) --------
def test_default_weight_only_for_a_distiller_whose_losses_weigh_images(tmp_path):
    """The default weight (2) acts on the output-distillation loss; a distiller of
    feature losses only would refuse it at build (nothing weighs images), so it keeps 1
    unless the user asks. A config's own weight, 1 included, wins over the default."""
    folder = black_images(tmp_path / 'u', 2)
    cfg = prepare_train_cfg(KD_OUT_S2N)
    losses = cfg.model.distiller.distill_losses
    assert [type_name(loss) for loss in losses.values()] == ['YOLOv5OutputDistillLoss']
    features_only = copy.deepcopy(cfg)
    features_only.model.distiller.distill_losses = dict(
        loss_cwd=dict(type='ChannelWiseDivergence', tau=1, loss_weight=1))
    apply_unlabeled(cfg, [folder])
    apply_unlabeled(features_only, [folder])
    assert cfg.model.unlabeled_weight == 2.0
    assert features_only.model.unlabeled_weight == 1.0
    own = prepare_train_cfg(KD_OUT_S2N, cfg_options={'model.unlabeled_weight': 1.0},
                            unlabeled=[folder])
    assert own.model.unlabeled_weight == 1.0


@pytest.mark.parametrize('loss, weighs', [
    (dict(type='YOLOv5OutputDistillLoss'), True),
    (dict(type='mmkd_yolo.YOLOv5MSEOutputDistillLoss', loss_weight=0.1), True),
    (dict(type=YOLOv5OutputDistillLoss), True),  # a class, as a Python config may give
    (dict(type='ChannelWiseDivergence', tau=1), False),
    (dict(type='mmrazor.ChannelWiseDivergence', tau=1), False),
    (dict(type='NoSuchLoss'), False),
    (dict(loss_weight=1), False),
    (None, False),
])
def test_weighs_images_by_the_loss_class(loss, weighs):
    """The default weight goes where a loss takes image weights (a YOLOv5HeadLossBase),
    however the config names its type."""
    model = dict(distiller=dict(distill_losses=dict(
        loss_cwd=dict(type='ChannelWiseDivergence', tau=1), other=loss)))
    assert _weighs_images(model) is weighs


def test_weighs_images_for_a_subclass_registered_under_its_own_name():
    @MMKD_MODELS.register_module(name='TestOwnOutputLoss', force=True)
    class OwnOutputLoss(YOLOv5OutputDistillLoss):
        pass
    model = dict(distiller=dict(distill_losses=dict(own=dict(type='TestOwnOutputLoss'))))
    assert _weighs_images(model)
    assert not _weighs_images(dict(distiller=dict(distill_losses={})))


def test_weight_and_view_reach_the_model_and_the_log(tmp_path):
    folder = black_images(tmp_path / 'u', 2)
    default = prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder])
    assert default.model.unlabeled_weight == 2.0  # DEFAULT_UNLABELED_WEIGHT
    assert 'student_aug' not in default.model.data_preprocessor
    with logged('unlabeled_view_test') as records:
        cfg = prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], unlabeled_weight=3.0,
                                unlabeled_aug='strong')
    assert cfg.model.unlabeled_weight == 3.0
    assert cfg.model.data_preprocessor.student_aug == dict(type='mmkd_yolo.UnlabeledPhotometricAug')
    line = next(r.getMessage() for r in records if 'images from' in r.getMessage())
    assert 'output distillation weighted 3;' in line, line
    assert '--unlabeled-aug strong: the student sees them strongly augmented' in line, line


@pytest.mark.parametrize('options, message', [
    (dict(unlabeled_weight=0.0), r'unlabeled_weight 0.0 \(--unlabeled-weight\) is not in '
     r'\(0, inf\)'),
    (dict(unlabeled_weight=-1.0), r'unlabeled_weight -1.0 \(--unlabeled-weight\) is not in'),
    (dict(unlabeled_weight=float('nan')), r'unlabeled_weight nan \(--unlabeled-weight\) is '
     'not in'),
    (dict(unlabeled_weight=float('inf')), r'unlabeled_weight inf \(--unlabeled-weight\) is '
     'not in'),
    (dict(unlabeled_aug='weak'), r"--unlabeled-aug 'weak' is not one of \['none', 'strong'\]"),
])
def test_bad_weight_or_view_named_with_the_valid_values(tmp_path, options, message):
    folder = black_images(tmp_path / 'u', 2)
    with pytest.raises(ConfigError, match=message):
        prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], **options)


@pytest.mark.parametrize('options, named', [
    (dict(unlabeled_weight=2.0), '--unlabeled-weight'),
    (dict(unlabeled_aug='strong'), '--unlabeled-aug'),
    (dict(unlabeled_ratio=0.5, unlabeled_aug='none'), '--unlabeled-ratio, --unlabeled-aug'),
])
def test_weight_or_view_without_unlabeled_images_refused(options, named):
    with pytest.raises(ConfigError, match=f'{named}, but no unlabeled images are used'):
        prepare_train_cfg(KD_OUT_S2N, **options)


def test_command_line_options_parse_and_refuse_unknown_views(capsys):
    import argparse

    from mmkd_yolo.apis import add_distill_args
    parser = argparse.ArgumentParser()
    add_distill_args(parser)
    args = parser.parse_args(['--unlabeled', 'u', '--unlabeled-weight', '2.5',
                              '--unlabeled-aug', 'strong'])
    assert args.unlabeled_weight == 2.5 and args.unlabeled_aug == 'strong'
    plain = parser.parse_args([])
    assert plain.unlabeled_weight is None and plain.unlabeled_aug is None
    with pytest.raises(SystemExit):
        parser.parse_args(['--unlabeled-aug', 'weak'])
    assert "invalid choice: 'weak' (choose from" in capsys.readouterr().err


def test_strong_view_from_the_loader_to_the_student(mixed_loader):
    """The built preprocessor of ``--unlabeled-aug strong`` on a real batch: the
    labeled rows of the student's view are the teacher's, the unlabeled ones (black
    images) changed, within YOLOv5's normalised range [0, 1]."""
    cfg, loader = mixed_loader
    prep_cfg = dict(copy.deepcopy(cfg.model.data_preprocessor),
                    student_aug=dict(type='mmkd_yolo.UnlabeledPhotometricAug'))
    preprocessor = MMENGINE_MODELS.build(prep_cfg)
    # a draw with colour jitter or cutout on most of the 4 images (on black images
    # colour jitter only changes the grey padding, blur changes nothing)
    torch.manual_seed(4)
    out = preprocessor(copy.deepcopy(next(iter(loader))), True)
    inputs, student = out['inputs'], out['data_samples']['student_inputs']
    assert torch.equal(student[:4], inputs[:4])
    assert (student[4:] - inputs[4:]).abs().mean() > 0.01
    assert student.min() >= 0 and student.max() <= 1


@pytest.mark.slow
def test_dry_run_says_the_weight_and_the_view(tmp_path):
    from mmkd_yolo.apis import dry_run
    folder = black_images(tmp_path / 'u', 2)
    cfg = prepare_train_cfg(KD_OUT_N2N, unlabeled=[folder], unlabeled_weight=3.0,
                            unlabeled_aug='strong')
    lines = dry_run(cfg, img_size=64, batch_size=4)
    assert any('output distillation weighted 3; the student\'s view: UnlabeledPhotometricAug'
               in line for line in lines), lines


# --- pseudo-labels (--unlabeled-pseudo-labels) --------------------------------------------
def test_pseudo_labels_reach_the_model_and_the_log(tmp_path):
    folder = black_images(tmp_path / 'u', 2)
    assert 'pseudo_label_score_thr' not in prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder]).model
    with logged('unlabeled_pseudo_test') as records:
        cfg = prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], unlabeled_pseudo_labels=0.6)
    assert cfg.model.pseudo_label_score_thr == 0.6
    line = next(r.getMessage() for r in records if 'images from' in r.getMessage())
    assert "unlabeled (detection loss against the teacher's boxes scoring > 0.6" in line, line


@pytest.mark.parametrize('score', [0.0, 1.0, -0.5, float('nan')])
def test_bad_pseudo_label_score_named(tmp_path, score):
    folder = black_images(tmp_path / 'u', 2)
    with pytest.raises(ConfigError, match=rf'pseudo_label_score_thr {score} '
                       r'\(--unlabeled-pseudo-labels\) is not in \(0, 1\)'):
        prepare_train_cfg(KD_OUT_S2N, unlabeled=[folder], unlabeled_pseudo_labels=score)


def test_the_configs_own_values_stay_and_are_logged(tmp_path):
    """A config's (here --cfg-options') unlabeled_weight, pseudo-label score and student
    view are kept when no option is given, and the log line says them (was: reset to
    the defaults, and the log said 'weighted 1', 'distillation loss only'); a given
    option wins over the config."""
    folder = black_images(tmp_path / 'u', 2)
    options = {'model.unlabeled_weight': 2.5, 'model.pseudo_label_score_thr': 0.7,
               'model.data_preprocessor.student_aug.type': 'mmkd_yolo.UnlabeledPhotometricAug',
               'model.data_preprocessor.student_aug.blur_prob': 0.0}
    with logged('unlabeled_config_test') as records:
        cfg = prepare_train_cfg(KD_OUT_S2N, cfg_options=options, unlabeled=[folder])
    assert cfg.model.unlabeled_weight == 2.5
    assert cfg.model.pseudo_label_score_thr == 0.7
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.type == 'YOLOv5UnlabeledDataPreprocessor'
    assert preprocessor.student_aug == dict(type='mmkd_yolo.UnlabeledPhotometricAug',
                                            blur_prob=0.0)
    assert preprocessor.mean == [0., 0., 0.]  # the student's preprocessor, completed
    line = next(r.getMessage() for r in records if 'images from' in r.getMessage())
    assert "teacher's boxes scoring > 0.7" in line, line
    assert 'output distillation weighted 2.5;' in line, line
    assert "the config's student_aug UnlabeledPhotometricAug: the student sees them" in line
    MMENGINE_MODELS.build(copy.deepcopy(preprocessor))  # a preprocessor that builds
    given = prepare_train_cfg(KD_OUT_S2N, cfg_options=options, unlabeled=[folder],
                              unlabeled_weight=3.0, unlabeled_aug='none',
                              unlabeled_pseudo_labels=0.4)
    assert given.model.unlabeled_weight == 3.0
    assert given.model.pseudo_label_score_thr == 0.4
    assert 'student_aug' not in given.model.data_preprocessor
    with pytest.raises(ConfigError, match=r'unlabeled_weight -1 \(--unlabeled-weight\)'):
        prepare_train_cfg(KD_OUT_S2N, cfg_options={'model.unlabeled_weight': -1},
                          unlabeled=[folder])


def test_pseudo_labels_without_unlabeled_images_refused():
    with pytest.raises(ConfigError, match='--unlabeled-pseudo-labels, but no unlabeled images '
                       'are used'):
        prepare_train_cfg(KD_OUT_S2N, unlabeled_pseudo_labels=0.5)


def test_pseudo_labels_option_parses():
    import argparse

    from mmkd_yolo.apis import add_distill_args
    parser = argparse.ArgumentParser()
    add_distill_args(parser)
    assert parser.parse_args(['--unlabeled-pseudo-labels', '0.7']).unlabeled_pseudo_labels == 0.7
    assert parser.parse_args([]).unlabeled_pseudo_labels is None
