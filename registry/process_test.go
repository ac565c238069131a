package registry

func helperMain(role string) int { return 2 }
