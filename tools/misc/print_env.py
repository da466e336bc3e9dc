"""Print the environment report (Python, torch, the OpenMMLab stack, compat measures)."""
from mmkd_yolo.env import main

if __name__ == '__main__':
    main()
