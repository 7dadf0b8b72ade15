from appkit_cli.main import run

run()
