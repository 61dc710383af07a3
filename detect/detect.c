/* detect/detect.c — placeholder until the detectors land. */
int mk_detect_placeholder(void);
int mk_detect_placeholder(void) { return 0; }
