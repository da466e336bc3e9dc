"""benchmarks/kd_gain.py: what its variants pass to tools/train.py, and the extra
unlabeled images of the demo-unlabeled regime."""
import os
import os.path as osp
from pathlib import Path

import pytest

from ..conftest import REPO
from ..helpers.scripts import load_script


@pytest.fixture(scope='module')
def kd_gain():
    return load_script(osp.join(REPO, 'benchmarks', 'kd_gain.py'), 'kd_gain')


@pytest.mark.parametrize('variant, expected', [
    ('kd-out+unlabeled', []),
    ('kd-out+unlabeled-w1', ['--unlabeled-weight', '1.0']),
    ('kd-out+unlabeled-2view', ['--unlabeled-aug', 'strong', '--unlabeled-weight', '1.0']),
    ('kd-out+unlabeled-w2', ['--unlabeled-weight', '2.0']),
    ('kd-out+unlabeled-w3', ['--unlabeled-weight', '3.0']),
    ('kd-out+unlabeled-2view-w2', ['--unlabeled-aug', 'strong', '--unlabeled-weight', '2.0']),
    ('kd-out+unlabeled-2view-w3', ['--unlabeled-aug', 'strong', '--unlabeled-weight', '3.0']),
    ('kd-out+unlabeled-pl', ['--unlabeled-weight', '1.0', '--unlabeled-pseudo-labels', '0.5']),
    ('kd-out+unlabeled-w2-pl', ['--unlabeled-weight', '2.0', '--unlabeled-pseudo-labels', '0.5']),
    ('kd-out+unlabeled-2view-pl', ['--unlabeled-aug', 'strong', '--unlabeled-weight', '1.0',
                                   '--unlabeled-pseudo-labels', '0.5']),
    ('kd-out+unlabeled-2view-w2-pl', ['--unlabeled-aug', 'strong', '--unlabeled-weight', '2.0',
                                      '--unlabeled-pseudo-labels', '0.5']),
])
def test_unlabeled_variants_switches(kd_gain, variant, expected):
    switches = kd_gain.variant_switches(variant, 'u.txt')
    assert switches == ['--unlabeled', 'u.txt', '--unlabeled-ratio', '0.5'] + expected
    # what tools/train.py accepts
    import argparse

    from mmkd_yolo.apis import add_distill_args
    parser = argparse.ArgumentParser()
    add_distill_args(parser)
    args = parser.parse_args(switches)
    assert args.unlabeled == ['u.txt'] and args.unlabeled_ratio == 0.5


def demo_like(tmp_path, num_train=8):
    """A small set made as the demo's (32 px), and the .txt list of its unlabeled three
    quarters, as ``demo_quarter`` writes it."""
    from mmkd_yolo.datasets import make_shapes_dataset
    task = dict(num_train=num_train, num_val=2, img_size=32, data_seed=0)
    root = str(tmp_path / 'demo')
    make_shapes_dataset(root, num_train=num_train, num_val=2, img_size=32, seed=0)
    return task, root


def read_list(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def test_extra_unlabeled_images_are_new_made_alike_and_made_once(kd_gain, tmp_path):
    import glob

    import cv2
    task, root = demo_like(tmp_path)
    out = str(tmp_path / 'out')
    _, own_list = kd_gain.demo_quarter(root, out)
    own = read_list(own_list)
    assert len(own) == 6
    path, suffix = kd_gain.demo_unlabeled_images(task, own_list, out, 9)
    images = read_list(path)
    assert suffix == '_u9' and len(images) == 9 and images[:6] == own
    extra = images[6:]
    demo_files = glob.glob(osp.join(root, '*', '*.jpg'))
    demo_bytes = {Path(f).read_bytes() for f in demo_files}
    assert len(demo_files) == 10 and len(set(extra)) == 3
    for image in extra:
        assert image.startswith(out) and osp.isfile(image)
        assert Path(image).read_bytes() not in demo_bytes  # not a demo train or val image
        assert cv2.imread(image).shape == (32, 32, 3)
    made = {f: os.stat(f).st_mtime_ns for f in extra}
    path, _ = kd_gain.demo_unlabeled_images(task, own_list, out, 9)
    assert read_list(path) == images and all(os.stat(f).st_mtime_ns == t  # not made again
                                             for f, t in made.items())
    more, suffix = kd_gain.demo_unlabeled_images(task, own_list, out, 11)
    assert suffix == '_u11' and read_list(more)[:9] == images and len(read_list(more)) == 11
    assert [Path(f).read_bytes() for f in extra] == [Path(f).read_bytes()
                                                     for f in read_list(more)[6:9]]
    fewer, suffix = kd_gain.demo_unlabeled_images(task, own_list, out, 4)
    assert suffix == '_u4' and read_list(fewer) == own[:4]
    assert kd_gain.demo_unlabeled_images(task, own_list, out, 6)[1] == ''  # the demo's own


def test_runs_on_other_unlabeled_images_get_their_own_work_dirs(kd_gain, tmp_path,
                                                                monkeypatch):
    import argparse
    task, root = demo_like(tmp_path)
    runs = []
    monkeypatch.setattr(kd_gain, 'DEMO_TASK', dict(kd_gain.DEMO_TASK, **task))
    monkeypatch.setattr(kd_gain, 'demo_data', lambda task: root)
    monkeypatch.setattr(kd_gain, 'train_run', lambda wd, cfg, extra, options, epochs=None:
                        runs.append((wd, extra)) or 0.0)
    out = str(tmp_path / 'out')
    args = argparse.Namespace(regime='demo-unlabeled', seeds=[0], unlabeled_images=9,
                              variants=['kd-out', 'kd-out+unlabeled-2view'])
    kd_gain.run_demo(args, out)
    dirs = {osp.relpath(wd, out): extra for wd, extra in runs[1:]}  # [0]: the teacher
    assert set(dirs) == {osp.join('kd-out', 'seed0'),
                         osp.join('kd-out+unlabeled-2view', 'seed0_u9')}
    extra = dirs[osp.join('kd-out+unlabeled-2view', 'seed0_u9')]
    listed = extra[extra.index('--unlabeled') + 1]
    assert len(read_list(listed)) == 9
    assert extra[-4:] == ['--unlabeled-aug', 'strong', '--unlabeled-weight', '1.0']


@pytest.mark.parametrize('argv', [['demo', '--unlabeled-images', '500'],
                                  ['demo-unlabeled', '--unlabeled-images', '0']])
def test_unlabeled_images_only_for_the_demo_unlabeled_regime(kd_gain, monkeypatch, capsys,
                                                             argv):
    monkeypatch.setattr('sys.argv', ['kd_gain.py'] + argv)
    with pytest.raises(SystemExit):
        kd_gain.parse_args()
    assert '--unlabeled-images N (N >= 1) is for the demo-unlabeled regime' in \
        capsys.readouterr().err


def test_all_labels_variant_trains_on_every_image_for_as_many_iterations(kd_gain, tmp_path,
                                                                         monkeypatch):
    """kd-out-all-labels-half-epochs: the demo's training labels all kept (no quarter's
    ann_file) for half the epochs, where the others of the regime get the quarter."""
    import argparse
    task, root = demo_like(tmp_path)
    runs = {}
    monkeypatch.setattr(kd_gain, 'DEMO_TASK', dict(kd_gain.DEMO_TASK, **task))
    monkeypatch.setattr(kd_gain, 'demo_data', lambda task: root)
    monkeypatch.setattr(kd_gain, 'train_run', lambda wd, cfg, extra, options, epochs=None:
                        runs.setdefault(osp.basename(osp.dirname(wd)), (options, epochs))
                        and 0.0)
    args = argparse.Namespace(regime='demo-unlabeled', seeds=[0], unlabeled_images=None,
                              variants=['kd-out-2x-epochs', 'kd-out-all-labels-half-epochs'])
    kd_gain.run_demo(args, str(tmp_path / 'out'))
    epochs = kd_gain.DEMO_TASK['epochs']

    def train_labels(options):
        return [o for o in options if o.startswith('train_dataloader.dataset.ann_file=')]

    quarter = train_labels(runs['kd-out-2x-epochs'][0])
    assert len(quarter) == 1 and quarter[0].endswith('train_labeled1of4.json')
    assert runs['kd-out-2x-epochs'][1] == 2 * epochs
    options, half = runs['kd-out-all-labels-half-epochs']
    # the config's own training labels: all of them, 4 times the quarter's images, for a
    # quarter of the control's epochs: as many iterations
    assert train_labels(options) == []
    assert type(half) is int and 4 * half == runs['kd-out-2x-epochs'][1]  # 4 x 15 = 60
    assert 'train_cfg.val_interval=3' in options  # 5 / 2 rounded half up, an integer


def test_all_labels_variant_on_coco128_trains_on_the_whole_half(kd_gain, tmp_path,
                                                                monkeypatch):
    import argparse
    import json

    import cv2
    import numpy as np
    coco = tmp_path / 'coco128'
    (coco / 'images').mkdir(parents=True)
    for i in range(16):
        cv2.imwrite(str(coco / 'images' / f'{i:02d}.jpg'), np.zeros((8, 8, 3), np.uint8))
    (coco / 'data.yaml').write_text('names:\n- person\n')
    (tmp_path / 'n.pt').write_bytes(b'')
    data, extras = {}, {}
    monkeypatch.setattr(kd_gain, 'train_run', lambda wd, cfg, extra, options, epochs=None:
                        extras.setdefault(osp.basename(osp.dirname(wd)), (extra, epochs))
                        and data.setdefault((osp.basename(osp.dirname(wd)),
                                             osp.basename(wd)),
                                            extra[extra.index('--data') + 1]) and 0.0)
    args = argparse.Namespace(regime='real-unlabeled', seeds=[0], coco128=str(coco),
                              yolov5n=str(tmp_path / 'n.pt'), img_size=64, epochs=30,
                              val_interval=5,
                              variants=['kd-out-2x-epochs', 'kd-out-all-labels-half-epochs'])
    kd_gain.run_real(args, str(tmp_path / 'out'))
    for split, (train, val) in (('splitAB_seed0', ('A', 'B')), ('splitBA_seed0', ('B', 'A'))):
        with open(data[('kd-out-2x-epochs', split)]) as f:
            quarter = json.load(f)
        with open(data[('kd-out-all-labels-half-epochs', split)]) as f:
            whole = json.load(f)
        assert quarter['train'] == f'half{train}_labeled1of4.txt'
        assert whole['train'] == f'half{train}.txt' and whole['val'] == f'half{val}.txt'
        assert len(read_list(osp.join(whole['path'], whole['train']))) == 8
        assert len(read_list(osp.join(quarter['path'], quarter['train']))) == 2
    extra, epochs = extras['kd-out-all-labels-half-epochs']
    assert epochs == 15 and '--unlabeled' not in extra and extras['kd-out-2x-epochs'][1] == 60


@pytest.mark.parametrize('argv, message', [
    (['demo', '--variants', 'kd-out-all-labels-half-epochs'],
     'need a regime with unlabeled images'),
    (['real-unlabeled', '--epochs', '25', '--variants', 'kd-out-all-labels-half-epochs'],
     "['kd-out-all-labels-half-epochs'] scale the run's 25 epochs to a fraction"),
])
def test_refuses_all_labels_without_a_quarter_and_uneven_epochs(kd_gain, monkeypatch, capsys,
                                                                argv, message):
    monkeypatch.setattr('sys.argv', ['kd_gain.py'] + argv)
    with pytest.raises(SystemExit):
        kd_gain.parse_args()
    assert message in capsys.readouterr().err
    monkeypatch.setattr('sys.argv', ['kd_gain.py', 'real-unlabeled', '--epochs', '26',
                                     '--variants', 'kd-out-all-labels-half-epochs'])
    assert kd_gain.parse_args().epochs == 26  # an even length is taken


def warmup_and_stop(kd_gain, tmp_path, variant, per_epoch, epochs, capsys):
    """The warm-up (iterations) and the epochs without distillation of a demo variant's
    config as tools/train.py gets it, by the hooks that read them, for a run of ``epochs``
    epochs of ``per_epoch`` iterations."""
    from types import SimpleNamespace

    import torch
    from mmengine import Config
    from mmengine.logging import MMLogger

    from mmkd_yolo.engine import ScaledWarmupParamSchedulerHook
    cfg = Config.fromfile(kd_gain.variant_config(variant, kd_gain.DEMO_KD_CFG, str(tmp_path)))
    options = {k: v for k, v in cfg.default_hooks.param_scheduler.items()
               if k not in ('type', '_scope_')}
    hook = ScaledWarmupParamSchedulerHook(**options)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01, momentum=0.9)
    MMLogger.get_instance(f'kd_gain_{variant}')  # print_log's 'current' logger
    capsys.readouterr()
    hook.before_train(SimpleNamespace(max_epochs=epochs, train_dataloader=range(per_epoch),
                                      optim_wrapper=SimpleNamespace(optimizer=optimizer)))
    logged = capsys.readouterr().out
    warmup = int(logged.split('warm-up: ')[1].split(' of ')[0])
    stop, = [h for h in cfg.custom_hooks if h['type'].endswith('StopDistillLastEpochsHook')]
    return warmup, stop['num_last_epochs']


def test_all_labels_nostop_variant_has_the_unlabeled_recipes_schedule(kd_gain, tmp_path,
                                                                       capsys):
    """On the demo task (128 labeled + 384 unlabeled images, batch 16, 480 iterations) every
    image labeled for 15 epochs of 32 iterations warms up and distils as the half-unlabeled
    recipe's 30 epochs of 16 do, and as the labeled quarter's 60 of 8 without the stop; the
    configs' variant, for contrast, warms up for mmyolo's 3 epochs (96 iterations) and
    stops distilling for its last epochs."""
    matched = warmup_and_stop(kd_gain, tmp_path, 'kd-out-all-labels-half-epochs-nostop', 32,
                              15, capsys)
    assert matched == (50, 0)
    assert warmup_and_stop(kd_gain, tmp_path, 'kd-out-nostop-2x-epochs', 8, 60,
                           capsys) == (50, 0)
    assert warmup_and_stop(kd_gain, tmp_path, 'kd-out+unlabeled-w2', 16, 30, capsys)[0] == 50
    assert warmup_and_stop(kd_gain, tmp_path, 'kd-out-all-labels-half-epochs', 32, 15,
                           capsys) == (96, 5)
