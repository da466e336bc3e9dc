"""Print the environment report (Python, torch, the OpenMMLab stack, compat measures)."""
from mmkd_yolo.apis.env import main

if __name__ == '__main__':
    main()
