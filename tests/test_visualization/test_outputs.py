"""Where tools/infer.py writes: a folder of its own, never over an input image."""
import pytest

from mmkd_yolo.errors import DataError
from mmkd_yolo.visualization import drawn_image_paths, new_output_dir


def test_new_output_dir_never_reuses_a_folder_with_files(tmp_path):
    out = tmp_path / 'infer'
    assert new_output_dir(str(out)) == str(out) and out.is_dir()  # created
    assert new_output_dir(str(out) + '/') == str(out)  # still empty: used as it is
    (out / 'a.jpg').write_bytes(b'earlier result')
    assert new_output_dir(str(out)) == str(tmp_path / 'infer2')
    (tmp_path / 'infer2' / 'b.jpg').write_bytes(b'x')
    (tmp_path / 'infer3').write_text('a file of that name')
    assert new_output_dir(str(out)) == str(tmp_path / 'infer4')
    assert (out / 'a.jpg').read_bytes() == b'earlier result'
    assert new_output_dir(str(out), exist_ok=True) == str(out)


def test_drawn_images_keep_relative_paths(tmp_path):
    images = [str(tmp_path / 'imgs' / d / '1.jpg') for d in ('a', 'b')]
    out = str(tmp_path / 'out')
    assert drawn_image_paths(images, out) == [f'{out}/a/1.jpg', f'{out}/b/1.jpg']


def test_an_output_over_an_input_image_is_refused(tmp_path):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    images = [str(folder / 'x.jpg'), str(folder / 'y.jpg')]
    for path in images:
        open(path, 'wb').write(b'jpeg')
    with pytest.raises(DataError, match=r"would write a drawn image over the input image "
                                        r"'.*x\.jpg': give another --out"):
        drawn_image_paths(images, str(folder))
    # the same folder reached through another spelling of its path
    with pytest.raises(DataError, match='over the input image'):
        drawn_image_paths(images, str(tmp_path / 'imgs' / '..' / 'imgs'))
