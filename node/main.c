/* Placeholder entry point until the node lands. */
int main(void)
{
    return 0;
}
